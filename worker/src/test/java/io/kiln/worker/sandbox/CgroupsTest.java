package io.kiln.worker.sandbox;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Detection from /proc-style files and what a task cgroup writes, on a fake hierarchy (plain files):
 * the v2 path runs here even where the machine only has v1 (the real kernel effects are in ScriptLimitsTest).
 */
class CgroupsTest {
  @TempDir Path tmp;

  Path file(String name, String content) throws Exception {
    Path f = tmp.resolve(name);
    Files.createDirectories(f.getParent());
    Files.writeString(f, content);
    return f;
  }

  @Test
  void prefersAUsableV2HierarchyAndCreatesATaskCgroupWithItsLimits() throws Exception {
    Path mount = Files.createDirectories(tmp.resolve("cg2"));
    file("cg2/cgroup.controllers", "cpuset cpu io memory hugetlb pids\n");
    file("cg2/cgroup.subtree_control", "");
    Path mountinfo = file("mountinfo", "35 24 0:30 / " + mount + " rw,nosuid - cgroup2 cgroup2 rw\n");
    Path self = file("self", "0::/user.slice/worker\n");
    Cgroups.Detected d = Cgroups.detect("auto", "", mountinfo, self);
    assertEquals("v2", d.version());
    assertEquals(mount.resolve("kiln"), d.v2Parent());

    TaskCgroup cg = Cgroups.create(d, "task-a", new TaskLimits(256L << 20, 2, 100, 0));
    Path dir = mount.resolve("kiln/task-a");
    assertEquals(String.valueOf(256L << 20), Files.readString(dir.resolve("memory.max")));
    assertEquals("200000 100000", Files.readString(dir.resolve("cpu.max")));
    assertEquals("100", Files.readString(dir.resolve("pids.max")));
    assertEquals(List.of(dir.resolve("cgroup.procs")), cg.procsFiles());
    assertTrue(cg.describe().contains("memory.max 256 MB") && cg.describe().contains("cpu.max 2 CPU"), cg.describe());
    assertTrue(Files.readString(mount.resolve("cgroup.subtree_control")).startsWith("+"), "controllers enabled below the mount");
    file("cg2/kiln/task-a/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
    assertTrue(cg.oomKilled());
  }

  @Test
  void fallsBackToV1UnderTheWorkersOwnCgroupAndToNothing() throws Exception {
    Path mem = Files.createDirectories(tmp.resolve("v1/memory"));
    Path pids = Files.createDirectories(tmp.resolve("v1/pids"));
    Path mountinfo = file("mountinfo", String.join("\n",
        "30 24 0:26 / " + tmp.resolve("unified") + " rw - cgroup2 cgroup2 rw",
        "31 24 0:27 / " + mem + " rw - cgroup cgroup rw,memory",
        "32 24 0:28 / " + pids + " rw - cgroup cgroup rw,pids", ""));
    Path self = file("self", "4:memory:/sandbox/abc\n8:pids:/\n0::/\n");
    Cgroups.Detected d = Cgroups.detect("auto", "", mountinfo, self);
    assertEquals("v1", d.version());
    assertEquals(mem.resolve("sandbox/abc/kiln"), d.v1Parents().get("memory"));
    assertEquals(pids.resolve("kiln"), d.v1Parents().get("pids"));

    TaskCgroup cg = Cgroups.create(d, "task-b", new TaskLimits(64L << 20, 1, 50, 0));
    assertEquals(String.valueOf(64L << 20), Files.readString(mem.resolve("sandbox/abc/kiln/task-b/memory.limit_in_bytes")));
    assertEquals("50", Files.readString(pids.resolve("kiln/task-b/pids.max")));
    assertEquals(2, cg.procsFiles().size());
    assertFalse(cg.oomKilled());

    // an empty task cgroup older than the limit is swept (a killed worker's); a fresh or busy one stays
    Path stale = Files.createDirectories(pids.resolve("kiln/task-stale"));
    Files.setLastModifiedTime(stale, java.nio.file.attribute.FileTime.fromMillis(0));
    Path busy = Files.createDirectories(pids.resolve("kiln/task-busy"));
    Files.writeString(busy.resolve("cgroup.procs"), ProcessHandle.current().pid() + "\n");
    Files.setLastModifiedTime(busy, java.nio.file.attribute.FileTime.fromMillis(0));
    Path fresh = Files.createDirectories(pids.resolve("kiln/task-fresh"));
    TaskCgroup.sweep(pids.resolve("kiln"), java.time.Duration.ofHours(1));
    assertFalse(Files.exists(stale));
    assertTrue(Files.exists(busy) && Files.exists(fresh));

    assertFalse(Cgroups.detect("v2", "", mountinfo, self).available(), "v2 asked for, only v1 here");
    Cgroups.Detected none = Cgroups.detect("auto", "", file("empty", ""), self);
    assertFalse(none.available());
    assertNull(none.version());
    assertFalse(Cgroups.detect("off", "", mountinfo, self).available());
  }
}
