"""Reference readings for scripts/gpu-check.ts, from pynvml: one line of JSON per read of GPU 0.
[t_start_s, t_end_s, energy_mJ (nvmlDeviceGetTotalEnergyConsumption), instant_power_mW (field 186),
 field186_timestamp_us, energy_field83_mJ, field83_timestamp_us]"""
import json
import sys
import time

import pynvml

pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
duration_s, path = float(sys.argv[1]), sys.argv[2]
end = time.time() + duration_s
try:
    with open(path, "w") as out:
      while time.time() < end:
          t0 = time.time()
          e = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
          t1 = time.time()
          fv = pynvml.nvmlDeviceGetFieldValues(h, [186, 83])
          p, e83 = fv[0], fv[1]
          row = [t0, t1, e,
                 p.value.uiVal if p.nvmlReturn == 0 else None, p.timestamp,
                 e83.value.ullVal if e83.nvmlReturn == 0 else None, e83.timestamp]
          out.write(json.dumps(row) + "\n")
          time.sleep(0.005)
except KeyboardInterrupt:
    pass
pynvml.nvmlShutdown()
