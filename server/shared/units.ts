/** Every unit conversion in carbonmon lives here. */

export const J_PER_KWH = 3.6e6;
export const G_PER_LB = 453.59237;

export const mJToJ = (energyMj: number): number => energyMj / 1e3;
export const uJToJ = (energyUj: number): number => energyUj / 1e6;
export const mWToW = (powerMw: number): number => powerMw / 1e3;

/** Grams of CO2eq for an energy at an intensity. */
export const carbonG = (energyJ: number, gPerKwh: number): number => (energyJ / J_PER_KWH) * gPerKwh;

/** WattTime reports lbs CO2 per MWh; 1 lb/MWh = 453.59237 g / 1000 kWh. */
export const lbsPerMwhToGPerKwh = (lbsPerMwh: number): number => (lbsPerMwh * G_PER_LB) / 1000;

export const msToS = (ms: number): number => ms / 1e3;

/** Durations in milliseconds: the one home for them (providers and services import these). */
export const SECOND_MS = 1000;
export const MINUTE_MS = 60 * SECOND_MS;
export const HOUR_MS = 60 * MINUTE_MS;
export const HALF_HOUR_MS = 30 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;
