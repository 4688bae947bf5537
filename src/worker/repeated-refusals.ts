/**
 * Spots an undocumented refusal that hits every call: the same unknown 4xx code on several
 * different devices in a row means the request itself is wrong (an API change, a gateway
 * policy), not the devices, and dead-lettering device after device at full rate would only bury
 * the cause. Pure state, no I/O: the worker feeds it every answered call.
 */

/** Options of `RepeatedRefusals`. */
export interface RepeatedRefusalsOptions {
  /** Different devices in a row with the same undocumented code that make it account-wide. */
  devicesInARow: number;
}

/** Defaults of `RepeatedRefusalsOptions`. */
export const REPEATED_REFUSALS_DEFAULTS: RepeatedRefusalsOptions = { devicesInARow: 3 };

/** Watches answers for one undocumented code repeating across devices. */
export class RepeatedRefusals {
  private readonly options: RepeatedRefusalsOptions;
  private code: string | null = null;
  private readonly devices = new Set<string>();

  constructor(options: Partial<RepeatedRefusalsOptions> = {}) {
    this.options = { ...REPEATED_REFUSALS_DEFAULTS, ...options };
  }

  /**
   * Notes an undocumented refusal of `device`; true when it makes `devicesInARow` different
   * devices in a row refused with `code` (the streak then starts over).
   */
  refused(code: string, device: string): boolean {
    if (code !== this.code) {
      this.code = code;
      this.devices.clear();
    }
    this.devices.add(device);
    if (this.devices.size < this.options.devicesInARow) return false;
    this.reset();
    return true;
  }

  /** Any other answer breaks the streak. */
  reset(): void {
    this.code = null;
    this.devices.clear();
  }
}
