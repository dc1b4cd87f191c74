// A memory cgroup per benchmarked process, as a container runtime gives each container: the process
// joins it before it execs (a shell writes its own pid into cgroup.procs, then execs the operator),
// so the limit and the accounting cover it from its first page. Reads what the kubelet reads:
// usage, peak, the working set (usage − inactive file pages, the figure `kubectl top` shows and the
// kubelet evicts on) and OOM kills. cgroup v1 (memory controller at /sys/fs/cgroup/memory) or v2.
// With a CPU limit, also the CPU controller's quota (v1 cpu.cfs_quota_us, v2 cpu.max, a 100 ms
// period as the kubelet sets it) and the time the process was throttled.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const V1 = '/sys/fs/cgroup/memory';
const V1_CPU = '/sys/fs/cgroup/cpu';
const CPU_PERIOD_US = 100_000;
const V2 = '/sys/fs/cgroup';
const MB = 1024 * 1024;

export interface CgroupSample {
  usageMb: number;
  /** usage − inactive file pages (cAdvisor's container_memory_working_set_bytes). */
  workingSetMb: number;
  /** The kernel's high-water mark of usage (v1 max_usage_in_bytes, v2 memory.peak). */
  peakMb: number;
  oomKills: number;
  /** Seconds the CPU quota held the process back (0 without a CPU limit). */
  cpuThrottledS: number;
}

const isV1 = (): boolean => existsSync(join(V1, 'memory.limit_in_bytes'));

/** The memory controller's mount: where a cgroup path of /proc/<pid>/cgroup lives. */
export const memoryRoot = (): string => (isV1() ? V1 : V2);

export class MemoryCgroup {
  readonly dir: string;
  readonly #v1: boolean;
  /** The CPU controller's cgroup when a CPU limit is set (v2: the same directory). */
  readonly #cpuDir: string | undefined;

  private constructor(dir: string, cpuDir?: string) {
    this.dir = dir;
    this.#v1 = isV1();
    this.#cpuDir = cpuDir;
  }

  /** An existing cgroup, e.g. a container's that the kubelet made. */
  static at(dir: string): MemoryCgroup {
    return new MemoryCgroup(dir);
  }

  /** Creates (or reuses) the cgroup `ferry-bench/<name>`; `limitMb` undefined: no limit;
   * `cpuMillis`: a CPU limit in millicores as a pod's `resources.limits.cpu`. */
  static create(name: string, limitMb: number | undefined, cpuMillis?: number): MemoryCgroup {
    const v1 = isV1();
    if (!v1 && !existsSync(join(V2, 'cgroup.controllers')))
      throw new Error('no memory cgroup controller at /sys/fs/cgroup');
    const parent = join(memoryRoot(), 'ferry-bench');
    mkdirSync(parent, { recursive: true });
    if (!v1) writeFileSync(join(V2, 'cgroup.subtree_control'), '+memory');
    if (!v1) writeFileSync(join(parent, 'cgroup.subtree_control'), '+memory');
    let cpuDir: string | undefined;
    if (cpuMillis !== undefined) {
      const quota = String(Math.round((cpuMillis / 1000) * CPU_PERIOD_US));
      if (v1) {
        cpuDir = join(V1_CPU, 'ferry-bench', name);
        mkdirSync(cpuDir, { recursive: true });
        writeFileSync(join(cpuDir, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
        writeFileSync(join(cpuDir, 'cpu.cfs_quota_us'), quota);
      } else {
        writeFileSync(join(V2, 'cgroup.subtree_control'), '+cpu');
        writeFileSync(join(parent, 'cgroup.subtree_control'), '+cpu');
        cpuDir = join(parent, name);
        mkdirSync(cpuDir, { recursive: true });
        writeFileSync(join(cpuDir, 'cpu.max'), `${quota} ${CPU_PERIOD_US}`);
      }
    }
    const cg = new MemoryCgroup(join(parent, name), cpuDir);
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
    if (this.#cpuDir && this.#cpuDir !== this.dir) {
      const files = [join(this.dir, 'cgroup.procs'), join(this.#cpuDir, 'cgroup.procs')];
      return {
        cmd: '/bin/sh',
        args: ['-c', 'echo $$ > "$0" && echo $$ > "$1" && shift && exec "$@"', ...files, cmd, ...args],
      };
    }
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
    const cpuStat = this.#cpuDir ? readFileSync(join(this.#cpuDir, 'cpu.stat'), 'utf8') : '';
    const throttled = Number(/^throttled_(?:time|usec) (\d+)$/m.exec(cpuStat)?.[1] ?? 0);
    return {
      usageMb: usage / MB,
      workingSetMb: Math.max(0, usage - inactiveFile) / MB,
      peakMb: peak / MB,
      oomKills: oom,
      cpuThrottledS: throttled / (this.#v1 ? 1e9 : 1e6),
    };
  }

  /** Removes the cgroup once its processes are gone (the kernel refuses while any is left). */
  remove(): void {
    try {
      if (this.#cpuDir && this.#cpuDir !== this.dir) rmdirSync(this.#cpuDir);
      rmdirSync(this.dir);
    } catch {
      // still in use or already gone: left for the next run's reuse
    }
  }
}
