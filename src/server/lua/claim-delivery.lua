--[[
  Claims a webhook delivery (sender, webhook-id) for processing, or returns what is there.

  KEYS[1]  the delivery's key (Keys.webhookDeliveryOf)
  ARGV[1]  this request's processing marker (JSON with its token and the body hash)
  ARGV[2]  seconds the marker holds if the process dies mid-delivery

  Returns nil when this request claimed the delivery, else the stored value (another request's
  marker, or the answer of an earlier delivery). One step, so two requests cannot both claim.
]]
if redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX') then
  return nil
end
return redis.call('GET', KEYS[1])
