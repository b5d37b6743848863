/**
 * Durations as plans and runsheet.config.ts write them: "30s", "5m", "1h", "250ms", or a number
 * of seconds. Normalised to milliseconds.
 */
import { z } from 'zod';

export const DurationSchema = z
  .union([z.number().nonnegative(), z.string()])
  .transform((value, ctx) => {
    if (typeof value === 'number') return Math.round(value * 1000);
    const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)$/.exec(value.trim());
    if (!match) {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration: write e.g. "250ms", "30s", "5m" or "1h"` });
      return z.NEVER;
    }
    const factor = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'min' | 'h'];
    return Math.round(Number(match[1]) * factor);
  });
