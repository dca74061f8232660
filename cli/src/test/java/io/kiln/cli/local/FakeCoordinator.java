package io.kiln.cli.local;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * A stand-in coordinator process for LocalCluster's process tests (JDK classes only, so its
 * classpath is just target/test-classes): the health endpoints, a token file, and
 * {@code /api/v1/cluster} listing the FakeWorker processes that are alive. Not the real
 * coordinator: that one is exercised by the integration tests in another module.
 */
public final class FakeCoordinator {
    public static void main(String[] args) throws Exception {
        Path dataDir = Paths.get(System.getProperty("kiln.data-dir"));
        int port = Integer.getInteger("kiln.api.port");
        System.out.println("fake coordinator starting, cluster port " + System.getProperty("kiln.cluster.port")
                + ", journal " + System.getProperty("kiln.journal"));
        if (Boolean.getBoolean("fake.fail")) {
            System.out.println("boom: cannot open the journal");
            System.exit(7);
        }
        Files.createDirectories(dataDir);
        Path tokenFile = dataDir.resolve("token");
        if (!Files.exists(tokenFile)) {
            Files.writeString(tokenFile, "tok-" + UUID.randomUUID());
        }
        String token = Files.readString(tokenFile).trim();
        HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0);
        s.createContext("/health/live", ex -> send(ex, 200, "{\"status\":\"live\"}"));
        s.createContext("/health/ready", ex -> send(ex, 200, "{\"status\":\"ready\",\"workers\":" + workers(dataDir).size() + "}"));
        s.createContext("/api/v1/cluster", ex -> {
            if (!("Bearer " + token).equals(ex.getRequestHeaders().getFirst("Authorization"))) {
                send(ex, 401, "{\"error\":\"bad token\"}");
                return;
            }
            List<String> items = new ArrayList<>();
            for (String w : workers(dataDir)) {
                items.add("{\"id\":\"" + w + "\",\"address\":\"pekko://kiln@127.0.0.1:1\",\"cpus\":1,\"memoryMb\":1024,"
                        + "\"gpus\":0,\"freeCpus\":1,\"freeGpus\":0,\"runningTasks\":[]}");
            }
            send(ex, 200, "{\"workers\":[" + String.join(",", items) + "]}");
        });
        s.start();
        System.out.println("fake coordinator listening on " + port);
    }

    static List<String> workers(Path dataDir) throws IOException {
        List<String> out = new ArrayList<>();
        Path dir = dataDir.resolve("fake-workers");
        if (!Files.isDirectory(dir)) {
            return out;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) {
                long pid = Long.parseLong(Files.readString(p).trim());
                if (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                    out.add(p.getFileName().toString());
                }
            }
        }
        out.sort(null);
        return out;
    }

    private static void send(HttpExchange ex, int status, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, b.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(b);
        }
    }
}
