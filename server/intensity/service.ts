/**
 * The CarbonIntensity service. Its RPCs answer UNIMPLEMENTED until the intensity-service issue lands.
 */
import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import { CarbonIntensityService } from "../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { unimplemented } from "../shared/grpc-status.js";
import type { ServiceRegistration } from "../shared/serve.js";

export function intensityRegistration(): ServiceRegistration {
  const implementation: UntypedServiceImplementation = {};
  for (const [method, def] of Object.entries(CarbonIntensityService)) {
    implementation[method] = unimplemented(def.path, def.responseStream);
  }
  return { name: "carbonmon.intensity.v1.CarbonIntensity", definition: CarbonIntensityService, implementation };
}
