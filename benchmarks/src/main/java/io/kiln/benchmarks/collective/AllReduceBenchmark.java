package io.kiln.benchmarks.collective;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import io.kiln.collective.CollectiveOptions;
import io.kiln.collective.RingCollective;

/**
 * Benchmark W2: float32 sum all-reduce between ranks that are separate JVM processes on
 * loopback, next to the peer (torch.distributed gloo, {@code allreduce_gloo.py}) in the same
 * invocation. Mirrors the peer's method: same element counts, 3 warm-up calls, the same
 * iteration counts, a barrier before and after the timed loop; busbw = algbw * 2(n-1)/n.
 *
 * <pre>
 * java -cp benchmarks/target/classes:$(cat benchmarks/target/classpath.txt) \
 *     io.kiln.benchmarks.collective.AllReduceBenchmark [--runs 3] [--transport both|shm|tcp]
 *     [--peer PATH] [--python /usr/bin/python3] [--no-peer] [--ranks 2] [--chunk BYTES] [--small BYTES]
 * </pre>
 */
public final class AllReduceBenchmark {

    static final int[] SIZES = {1 << 10, 1 << 14, 1 << 18, 1 << 20, 1 << 22, 1 << 24}; // elements, 4 KiB .. 64 MiB

    private AllReduceBenchmark() {
    }

    /** One measured size: bytes, microseconds per op. */
    record Row(long bytes, double micros) {
        double algbw() {
            return bytes / (micros * 1e-6) / 1e9;
        }

        double busbw(int n) {
            return algbw() * 2.0 * (n - 1) / n;
        }
    }

    public static void main(String[] args) throws Exception {
        Locale.setDefault(Locale.ROOT);
        Map<String, String> opt = parse(args);
        if (opt.containsKey("worker")) {
            worker(opt);
            return;
        }
        int ranks = Integer.parseInt(opt.getOrDefault("ranks", "2"));
        int runs = Integer.parseInt(opt.getOrDefault("runs", "1"));
        String python = opt.getOrDefault("python", "/usr/bin/python3");
        Path peer = Paths.get(opt.getOrDefault("peer", defaultPeer().toString()));
        boolean withPeer = !opt.containsKey("no-peer");
        String transport = opt.getOrDefault("transport", "both");
        List<String> modes = transport.equals("both") ? List.of("shm", "tcp") : List.of(transport);

        System.out.printf("W2 all-reduce (float32 sum), %d ranks as separate JVMs on 127.0.0.1, %d run(s)%n", ranks, runs);
        System.out.printf("machine: %d CPUs, %s; java %s; load average at start %s%n",
                Runtime.getRuntime().availableProcessors(), cpuModel(), System.getProperty("java.version"), loadAverage());
        Map<String, List<List<Row>>> kilnRuns = new LinkedHashMap<>();
        List<List<Row>> peerRuns = new ArrayList<>();
        String peerVersion = null;
        for (int run = 1; run <= runs; run++) {
            for (String mode : modes) {
                List<Row> k = runKiln(ranks, opt, mode);
                kilnRuns.computeIfAbsent(mode, m -> new ArrayList<>()).add(k);
                print("run " + run + " kiln ring, " + label(mode), k, ranks);
            }
            if (withPeer) {
                PeerResult p = runPeer(python, peer, ranks);
                peerVersion = p.version;
                peerRuns.add(p.rows);
                print("run " + run + " peer: " + p.version, p.rows, ranks);
            }
        }
        Map<String, List<Row>> kiln = new LinkedHashMap<>();
        kilnRuns.forEach((m, r) -> kiln.put(m, median(r)));
        List<Row> gloo = withPeer ? median(peerRuns) : null;
        System.out.println();
        System.out.printf("Median of %d run(s), load average at end %s. busbw = algbw * 2(n-1)/n; ratio = Kiln busbw /"
                + " gloo busbw (= gloo time / Kiln time)%n", runs, loadAverage());
        if (peerVersion != null) {
            System.out.println("peer: " + peerVersion);
        }
        StringBuilder head = new StringBuilder("| size |");
        StringBuilder rule = new StringBuilder("|---:|");
        for (String m : kiln.keySet()) {
            head.append(" Kiln ").append(m).append(" time (us) | Kiln ").append(m).append(" busbw (GB/s) |");
            rule.append("---:|---:|");
        }
        if (gloo != null) {
            head.append(" gloo time (us) | gloo busbw (GB/s) |");
            rule.append("---:|---:|");
            for (String m : kiln.keySet()) {
                head.append(" ").append(m).append(" / gloo |");
                rule.append("---:|");
            }
        }
        System.out.println(head);
        System.out.println(rule);
        int sizes = kiln.values().stream().mapToInt(List::size).min().orElse(0);
        for (int i = 0; i < sizes; i++) {
            StringBuilder line = new StringBuilder("| " + human(kiln.values().iterator().next().get(i).bytes) + " |");
            for (List<Row> k : kiln.values()) {
                line.append(String.format(" %.1f | %.3f |", k.get(i).micros, k.get(i).busbw(ranks)));
            }
            if (gloo != null && i < gloo.size()) {
                Row g = gloo.get(i);
                line.append(String.format(" %.1f | %.3f |", g.micros, g.busbw(ranks)));
                for (List<Row> k : kiln.values()) {
                    line.append(String.format(" %.2fx |", g.micros / k.get(i).micros));
                }
            }
            System.out.println(line);
        }
    }

    private static String label(String mode) {
        return mode.equals("shm") ? "default transport (same host: shared memory)" : "TCP forced";
    }

    private static String loadAverage() {
        try {
            String[] f = Files.readString(Paths.get("/proc/loadavg")).trim().split(" ");
            return f[0] + " " + f[1] + " " + f[2];
        } catch (IOException | RuntimeException e) {
            return "?";
        }
    }

    // ------------------------------------------------------------------ Kiln side

    private static List<Row> runKiln(int ranks, Map<String, String> opt, String mode) throws Exception {
        List<String> addrs = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            try (ServerSocket s = new ServerSocket()) {
                s.setReuseAddress(true);
                s.bind(new InetSocketAddress("127.0.0.1", 0));
                addrs.add("127.0.0.1:" + s.getLocalPort());
            }
        }
        String java = ProcessHandle.current().info().command().orElse("java");
        List<Process> procs = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            List<String> cmd = new ArrayList<>(List.of(java, "-Xms256m", "-Xmx1g", "-cp",
                    System.getProperty("java.class.path"), AllReduceBenchmark.class.getName(), "--worker",
                    "--rank", String.valueOf(r), "--addresses", String.join(",", addrs), "--mode", mode));
            for (String k : List.of("chunk", "small", "sizes", "sockbuf")) {
                if (opt.containsKey(k)) {
                    cmd.add("--" + k);
                    cmd.add(opt.get(k));
                }
            }
            ProcessBuilder pb = new ProcessBuilder(cmd);
            pb.redirectError(ProcessBuilder.Redirect.INHERIT);
            procs.add(pb.start());
        }
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            Process p = procs.get(r);
            try (BufferedReader in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (r == 0 && line.startsWith("RESULT ")) {
                        String[] f = line.split(" ");
                        rows.add(new Row(Long.parseLong(f[1]), Double.parseDouble(f[2])));
                    } else if (!line.startsWith("RESULT ")) {
                        System.out.println("  [rank " + r + "] " + line);
                    }
                }
            }
            if (!p.waitFor(10, TimeUnit.MINUTES) || p.exitValue() != 0) {
                procs.forEach(Process::destroyForcibly);
                throw new IllegalStateException("rank " + r + " failed (exit " + p.exitValue() + ")");
            }
        }
        return rows;
    }

    private static void worker(Map<String, String> opt) {
        int rank = Integer.parseInt(opt.get("rank"));
        List<String> addrs = Arrays.asList(opt.get("addresses").split(","));
        int n = addrs.size();
        CollectiveOptions o = CollectiveOptions.defaults();
        if (opt.containsKey("chunk")) {
            o = o.withChunkBytes(Integer.parseInt(opt.get("chunk")));
        }
        if (opt.containsKey("small")) {
            o = o.withSmallMessageBytes(Integer.parseInt(opt.get("small")));
        }
        if (opt.containsKey("sockbuf")) {
            o = o.withSocketBufferBytes(Integer.parseInt(opt.get("sockbuf")));
        }
        o = o.withSharedMemory(!"tcp".equals(opt.get("mode")));
        int[] sizes = opt.containsKey("sizes")
                ? Arrays.stream(opt.get("sizes").split(",")).mapToInt(Integer::parseInt).toArray() : SIZES;
        int max = Arrays.stream(sizes).max().orElse(0);
        ByteBuffer buf = ByteBuffer.allocateDirect(max * 4).order(ByteOrder.nativeOrder());
        try (RingCollective ring = RingCollective.open(rank, addrs, o)) {
            if (rank == 0) {
                System.out.println("links: to next " + ring.transportToNext() + ", from prev " + ring.transportFromPrev());
            }
            // JIT warm-up, twice over every size, so that the timed loops run compiled code and the
            // compiler threads are idle (the peer's Python loop needs none); then a correctness check.
            for (int pass = 0; pass < 2; pass++) {
                for (int s : sizes) {
                    int reps = (int) Math.max(10, Math.min(3000, (256L << 20) / (s * 4L)));
                    for (int k = 0; k < reps; k++) {
                        ring.allReduceSum(buf, s);
                    }
                }
            }
            for (int s : sizes) {
                for (int i = 0; i < s; i++) {
                    buf.putFloat(i * 4, rank + 1 + (i & 7));
                }
                ring.allReduceSum(buf, s);
                float want0 = n * (n + 1) / 2f;
                for (int i = 0; i < s; i++) {
                    if (buf.getFloat(i * 4) != want0 + n * (i & 7)) {
                        throw new IllegalStateException("wrong sum at " + i + " of " + s);
                    }
                }
            }
            for (int s : sizes) {
                for (int i = 0; i < s; i++) {
                    buf.putFloat(i * 4, 1f);
                }
                for (int k = 0; k < 3; k++) {
                    ring.allReduceSum(buf, s);
                }
                int iters = (int) Math.max(5, Math.min(200, (1L << 26) / (s * 4L)));
                ring.barrier();
                long t0 = System.nanoTime();
                for (int k = 0; k < iters; k++) {
                    ring.allReduceSum(buf, s);
                }
                ring.barrier();
                double us = (System.nanoTime() - t0) / 1e3 / iters;
                if (rank == 0) {
                    System.out.println("RESULT " + (s * 4L) + " " + us);
                }
            }
        }
    }

    // ------------------------------------------------------------------ peer side

    record PeerResult(String version, List<Row> rows) {
    }

    private static PeerResult runPeer(String python, Path script, int ranks) throws IOException, InterruptedException {
        if (!Files.isRegularFile(script)) {
            throw new IllegalArgumentException("peer script not found: " + script + " (use --peer PATH or --no-peer)");
        }
        ProcessBuilder pb = new ProcessBuilder(python, script.toString(), String.valueOf(ranks));
        pb.redirectErrorStream(true);
        Process p = pb.start();
        List<Row> rows = new ArrayList<>();
        String version = "?";
        try (BufferedReader in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                if (line.startsWith("torch ")) {
                    version = line.trim();
                } else if (!line.isEmpty() && Character.isDigit(line.charAt(0)) && line.contains(",")) {
                    String[] f = line.split(",");
                    rows.add(new Row(Long.parseLong(f[0]), Double.parseDouble(f[1])));
                } else if (!line.startsWith("bytes,")) {
                    System.out.println("  [peer] " + line);
                }
            }
        }
        if (!p.waitFor(10, TimeUnit.MINUTES) || p.exitValue() != 0) {
            throw new IllegalStateException("peer failed: exit " + p.exitValue());
        }
        return new PeerResult(version, rows);
    }

    // ------------------------------------------------------------------ helpers

    private static Path defaultPeer() {
        String root = System.getProperty("kiln.repo.root");
        Path base = root != null ? Paths.get(root) : Paths.get("").toAbsolutePath();
        if (base.getFileName() != null && base.getFileName().toString().equals("benchmarks")
                && Files.exists(base.resolve("pom.xml")) && !Files.exists(base.resolve("collective"))) {
            base = base.getParent();
        }
        return base.resolve("../shared/benchmarks/peers/allreduce_gloo.py").normalize();
    }

    static List<Row> median(List<List<Row>> runs) {
        List<Row> out = new ArrayList<>();
        int sizes = runs.stream().mapToInt(List::size).min().orElse(0);
        for (int i = 0; i < sizes; i++) {
            double[] t = new double[runs.size()];
            for (int r = 0; r < runs.size(); r++) {
                t[r] = runs.get(r).get(i).micros;
            }
            Arrays.sort(t);
            double med = t.length % 2 == 1 ? t[t.length / 2] : (t[t.length / 2 - 1] + t[t.length / 2]) / 2;
            out.add(new Row(runs.get(0).get(i).bytes, med));
        }
        return out;
    }

    private static void print(String title, List<Row> rows, int n) {
        System.out.println(title);
        for (Row r : rows) {
            System.out.printf("  %8s  %10.1f us  algbw %.3f GB/s  busbw %.3f GB/s%n", human(r.bytes), r.micros,
                    r.algbw(), r.busbw(n));
        }
    }

    static String human(long bytes) {
        if (bytes >= 1 << 20) {
            return (bytes >> 20) + " MiB";
        }
        return (bytes >> 10) + " KiB";
    }

    private static String cpuModel() {
        try {
            for (String l : Files.readAllLines(new File("/proc/cpuinfo").toPath())) {
                if (l.startsWith("model name")) {
                    return l.substring(l.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException | RuntimeException ignored) {
            // not Linux
        }
        return System.getProperty("os.arch");
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument " + a);
            }
            String k = a.substring(2);
            if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
                m.put(k, args[++i]);
            } else {
                m.put(k, "");
            }
        }
        return m;
    }
}
