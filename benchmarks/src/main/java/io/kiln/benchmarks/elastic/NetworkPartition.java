package io.kiln.benchmarks.elastic;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Cuts one local process off the network (loopback included) and heals it again: a real partition
 * for the chaos runs, needing root, nftables and the cgroup v1 {@code net_cls} controller.
 *
 * <p>The process is moved into a {@code net_cls} cgroup with its own class id, and an nftables
 * table drops (on the output hook, which loopback traffic passes) every packet its sockets send and
 * every packet sent to the ports it listens on. Connections it opens are dead from the first SYN;
 * connections to it are dead both ways. {@link #close()} removes the table and moves the process
 * back, so the node sees the others again and re-joins.
 */
final class NetworkPartition implements AutoCloseable {
  private static final Path NET_CLS = Path.of("/sys/fs/cgroup/net_cls");
  private static final String TABLE = "kiln_partition";
  private static final int CLASS_ID = 0x00100077;

  private final long pid;
  private final Path cgroup;
  final List<Integer> ports;

  private NetworkPartition(long pid, Path cgroup, List<Integer> ports) {
    this.pid = pid;
    this.cgroup = cgroup;
    this.ports = ports;
  }

  /** Isolates {@code pid}; fails with what is missing when this host cannot. */
  static NetworkPartition isolate(long pid) throws IOException, InterruptedException {
    if (!Files.isDirectory(NET_CLS)) {
      Files.createDirectories(NET_CLS);
      run("mount", "-t", "cgroup", "-o", "net_cls", "net_cls", NET_CLS.toString());
    }
    List<Integer> ports = localPorts(pid);
    if (ports.isEmpty()) throw new IOException("process " + pid + " has no TCP socket");
    Path cg = NET_CLS.resolve("kiln-partition-" + pid);
    Files.createDirectories(cg);
    Files.writeString(cg.resolve("net_cls.classid"), String.valueOf(CLASS_ID));
    Files.writeString(cg.resolve("cgroup.procs"), String.valueOf(pid));
    String portSet = ports.stream().map(String::valueOf).reduce((a, b) -> a + ", " + b).orElseThrow();
    String rules = "table inet " + TABLE + " {\n"
        + "  chain out {\n"
        + "    type filter hook output priority 0; policy accept;\n"
        + "    meta cgroup " + CLASS_ID + " drop\n"
        + "    tcp dport { " + portSet + " } drop\n"
        + "    tcp sport { " + portSet + " } drop\n"
        + "  }\n"
        + "}\n";
    Path file = Files.createTempFile("kiln-partition", ".nft");
    Files.writeString(file, rules);
    try {
      run("nft", "-f", file.toString());
    } finally {
      Files.deleteIfExists(file);
    }
    return new NetworkPartition(pid, cg, ports);
  }

  @Override
  public void close() throws IOException, InterruptedException {
    run("nft", "delete", "table", "inet", TABLE);
    if (Files.exists(Path.of("/proc/" + pid))) {
      Files.writeString(NET_CLS.resolve("cgroup.procs"), String.valueOf(pid));
    }
    Files.deleteIfExists(cgroup);
  }

  /**
   * The local TCP ports of {@code pid}'s sockets, listening and connected (cluster port, data-plane
   * links), from {@code ss}: packets to or from them are dropped, which also cuts connections made
   * before the process moved into the cgroup.
   */
  static List<Integer> localPorts(long pid) throws IOException, InterruptedException {
    String out = run("ss", "-Hatnp");
    Pattern line = Pattern.compile("^\\S+\\s+\\d+\\s+\\d+\\s+\\S*:(\\d+)\\s.*pid=" + pid + ",");
    TreeSet<Integer> ports = new TreeSet<>();
    for (String l : out.split("\n")) {
      Matcher m = line.matcher(l);
      if (m.find()) ports.add(Integer.parseInt(m.group(1)));
    }
    return new ArrayList<>(ports);
  }

  private static String run(String... command) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (p.waitFor() != 0) throw new IOException(String.join(" ", command) + " failed: " + out.strip());
    return out;
  }
}
