/**
 * The error answers the emulator gives, with the HTTP status and message of the real gateway
 * where known (onsmqtt's documented errors and the gateway errors common to Alibaba Cloud).
 */

/** An error answer: the body is `{RequestId, HostId, Code, Message, Recommend}`. */
export interface ApiError {
  httpStatus: number;
  code: string;
  message: string;
}

const CATALOGUE: Record<string, [number, string]> = {
  // Gateway: authentication.
  MissingAuthorization: [400, 'Authorization header is required.'],
  IncompleteSignature: [400, 'The request signature does not conform to Aliyun standards.'],
  'InvalidAccessKeyId.NotFound': [404, 'Specified access key is not found.'],
  'InvalidAccessKeyId.Inactive': [400, 'Specified access key is disabled.'],
  SignatureDoesNotMatch: [400, 'Specified signature does not match our calculation.'],
  'InvalidTimeStamp.Expired': [400, 'Specified time stamp or date value is expired.'],
  'InvalidTimeStamp.Format': [400, 'Specified time stamp or date value is not well formatted.'],
  MissingSignatureNonce: [400, 'SignatureNonce is mandatory for this action.'],
  SignatureNonceUsed: [400, 'Specified signature nonce was used already.'],
  MissingSecurityToken: [400, 'SecurityToken is mandatory for this action.'],
  'InvalidSecurityToken.MismatchWithAccessKey': [400, 'Specified security token mismatch with access key.'],
  // Gateway: routing and flow control.
  'InvalidAction.NotFound': [404, 'Specified api is not found, please check your url and method.'],
  InvalidVersion: [400, 'Specified parameter Version is not valid.'],
  'Throttling.User': [400, 'Request was denied due to user flow control.'],
  // Emulator choice: the block of a source IP above its limit is documented, its answer is not.
  'Forbidden.IpBlocked': [403, 'The source IP address called above its limit and is blocked for a while.'],
  RequestEntityTooLarge: [413, 'The request body is too large.'],
  ServiceUnavailable: [503, 'The request has failed due to a temporary failure of the server.'],
  InternalError: [500, 'The request processing has failed due to some unknown error, exception or failure.'],
  // onsmqtt's documented errors.
  ParameterFieldCheckFailed: [400, 'Failed to validate the parameters. The parameters may be missing or invalid.'],
  FindDeviceBySnError: [500, 'Failed to find the device certificate by the SN. Please check sn is valid'],
  MqttInstanceNotFound: [500, 'Specified instance is not found'],
  MqttOwnerCheckError: [500, 'Failed to validate the instance permission.'],
  // Emulator choice: GetCaCertificate's documentation lists no code for an unknown CA; this
  // mirrors FindDeviceBySnError.
  FindCaBySnError: [500, 'Failed to find the CA certificate by the SN. Please check sn is valid'],
};

/** The error with this code, with its usual status and message (500 for an unknown code). */
export function apiError(code: string, detail?: string): ApiError {
  const [httpStatus, message] = CATALOGUE[code] ?? [500, `Emulated error ${code}.`];
  return { httpStatus, code, message: detail ? `${message} ${detail}` : message };
}

/** The JSON body of an error answer. */
export function errorBody(error: ApiError, requestId: string, hostId: string): Record<string, string> {
  return {
    RequestId: requestId,
    HostId: hostId,
    Code: error.code,
    Message: error.message,
    Recommend: `https://api.aliyun.com/troubleshoot?q=${encodeURIComponent(error.code)}&product=OnsMqtt`,
  };
}
