package io.kiln.worker.sandbox;

/**
 * The resource limits of one task's process tree. Zero means "no limit" for each.
 *
 * @param memoryBytes resident memory (cgroup) or, without cgroups, virtual address space per process
 * @param cpus CPU quota in whole CPUs (cgroup {@code cpu.max}); not enforced without cgroups
 * @param pids the most processes and threads at once (cgroup {@code pids.max})
 * @param fileBytes the largest file any process may write (RLIMIT_FSIZE, SIGXFSZ beyond it)
 */
public record TaskLimits(long memoryBytes, int cpus, int pids, long fileBytes) {
  public static final TaskLimits NONE = new TaskLimits(0, 0, 0, 0);
}
