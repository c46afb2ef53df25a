/** A place on Earth, in degrees (WGS 84). Shared by the agent (IP location) and the intensity service (zones). */
export interface Coordinates {
  lat: number;
  lon: number;
}
