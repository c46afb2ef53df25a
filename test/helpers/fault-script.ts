/** Scripted misbehaviour for the imitation upstream servers: faults per path, delays that close() cancels. */
export class FaultScript<F extends { times?: number }> {
  private readonly faults = new Map<string, F>();
  private readonly timers = new Set<NodeJS.Timeout>();

  /** Sets (or, with undefined, clears) the fault for a path. */
  set(path: string, fault: F | undefined): void {
    if (fault) this.faults.set(path, { ...fault });
    else this.faults.delete(path);
  }

  /** The fault for this request, counting down `times`. */
  take(path: string): F | undefined {
    const f = this.faults.get(path);
    if (f?.times !== undefined && --f.times <= 0) this.faults.delete(path);
    return f;
  }

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => this.timers.add(setTimeout(resolve, ms)));
  }

  cancelWaits(): void {
    for (const t of this.timers) clearTimeout(t);
  }
}
