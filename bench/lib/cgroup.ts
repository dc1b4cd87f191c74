// A memory cgroup per benchmarked process, as a container runtime gives each container: the process
// joins it before it execs (a shell writes its own pid into cgroup.procs, then execs the operator),
// so the limit and the accounting cover it from its first page. Reads what the kubelet reads:
// usage, peak, the working set (usage − inactive file pages, the figure `kubectl top` shows and the
// kubelet evicts on) and OOM kills. cgroup v1 (memory controller at /sys/fs/cgroup/memory) or v2.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const V1 = '/sys/fs/cgroup/memory';
const V2 = '/sys/fs/cgroup';
const MB = 1024 * 1024;

export interface CgroupSample {
  usageMb: number;
  /** usage − inactive file pages (cAdvisor's container_memory_working_set_bytes). */
  workingSetMb: number;
  /** The kernel's high-water mark of usage (v1 max_usage_in_bytes, v2 memory.peak). */
  peakMb: number;
  oomKills: number;
}

const isV1 = (): boolean => existsSync(join(V1, 'memory.limit_in_bytes'));

/** The memory controller's mount: where a cgroup path of /proc/<pid>/cgroup lives. */
export const memoryRoot = (): string => (isV1() ? V1 : V2);

export class MemoryCgroup {
  readonly dir: string;
  readonly #v1: boolean;

  private constructor(dir: string) {
    this.dir = dir;
    this.#v1 = isV1();
  }

  /** An existing cgroup, e.g. a container's that the kubelet made. */
  static at(dir: string): MemoryCgroup {
    return new MemoryCgroup(dir);
  }

  /** Creates (or reuses) the cgroup `ferry-bench/<name>`; `limitMb` undefined: no limit. */
  static create(name: string, limitMb: number | undefined): MemoryCgroup {
    const v1 = isV1();
    if (!v1 && !existsSync(join(V2, 'cgroup.controllers')))
      throw new Error('no memory cgroup controller at /sys/fs/cgroup');
    const parent = join(memoryRoot(), 'ferry-bench');
    mkdirSync(parent, { recursive: true });
    if (!v1) writeFileSync(join(V2, 'cgroup.subtree_control'), '+memory');
    if (!v1) writeFileSync(join(parent, 'cgroup.subtree_control'), '+memory');
    const cg = new MemoryCgroup(join(parent, name));
    mkdirSync(cg.dir, { recursive: true });
    const limit = limitMb === undefined ? (v1 ? '-1' : 'max') : String(limitMb * MB);
    writeFileSync(join(cg.dir, v1 ? 'memory.limit_in_bytes' : 'memory.max'), limit);
    // A fresh high-water mark (v1 only lets it be reset; a new v2 cgroup starts at zero).
    if (v1) writeFileSync(join(cg.dir, 'memory.max_usage_in_bytes'), '0');
    return cg;
  }

  /** The processes in it now. */
  pids(): number[] {
    return readFileSync(join(this.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  }

  /** The command line that runs `cmd args` inside this cgroup from its first instruction. */
  wrap(cmd: string, args: string[]): { cmd: string; args: string[] } {
    return {
      cmd: '/bin/sh',
      args: ['-c', 'echo $$ > "$0" && exec "$@"', join(this.dir, 'cgroup.procs'), cmd, ...args],
    };
  }

  sample(): CgroupSample {
    const read = (f: string): string => readFileSync(join(this.dir, f), 'utf8');
    const stat = (key: string): number =>
      Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(read('memory.stat'))?.[1] ?? 0);
    const usage = Number(read(this.#v1 ? 'memory.usage_in_bytes' : 'memory.current'));
    const inactiveFile = stat(this.#v1 ? 'total_inactive_file' : 'inactive_file');
    const peak = this.#v1 ? Number(read('memory.max_usage_in_bytes')) : Number(read('memory.peak'));
    const oom = Number(
      /^oom_kill (\d+)$/m.exec(read(this.#v1 ? 'memory.oom_control' : 'memory.events'))?.[1] ?? 0,
    );
    return {
      usageMb: usage / MB,
      workingSetMb: Math.max(0, usage - inactiveFile) / MB,
      peakMb: peak / MB,
      oomKills: oom,
    };
  }

  /** Removes the cgroup once its processes are gone (the kernel refuses while any is left). */
  remove(): void {
    try {
      rmdirSync(this.dir);
    } catch {
      // still in use or already gone: left for the next run's reuse
    }
  }
}
