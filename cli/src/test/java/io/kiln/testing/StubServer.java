package io.kiln.testing;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;

/**
 * A stand-in HTTP server on 127.0.0.1:0 (the JDK's com.sun.net.httpserver) for unit tests of the
 * SDK and the CLI: it answers canned JSON and text/event-stream bodies over a real socket. The
 * real coordinator is exercised by the integration tests in another module.
 */
public final class StubServer implements AutoCloseable {
    /** Handles one exchange; may throw. */
    public interface Handler {
        void handle(HttpExchange ex) throws Exception;
    }

    /** One request as received. */
    public record Request(String method, String path, String query, String authorization, String body) {
    }

    private final HttpServer server;
    private final Map<String, Handler> routes = new ConcurrentHashMap<>();
    private final List<Request> requests = new CopyOnWriteArrayList<>();

    public StubServer() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.setExecutor(Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "stub-server");
            t.setDaemon(true);
            return t;
        }));
        server.createContext("/", this::dispatch);
        server.start();
    }

    /** Routes {@code "GET /api/v1/cluster"} (method, space, exact path; query not part of the key). */
    public StubServer on(String methodAndPath, Handler h) {
        routes.put(methodAndPath, h);
        return this;
    }

    /** A fixed JSON answer. */
    public StubServer json(String methodAndPath, int status, String json) {
        return on(methodAndPath, ex -> sendJson(ex, status, json));
    }

    public String url() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    public List<Request> requests() {
        return requests;
    }

    private void dispatch(HttpExchange ex) throws IOException {
        String body = new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
        String path = ex.getRequestURI().getPath();
        requests.add(new Request(ex.getRequestMethod(), path, ex.getRequestURI().getQuery(),
                ex.getRequestHeaders().getFirst("Authorization"), body));
        Handler h = routes.get(ex.getRequestMethod() + " " + path);
        try {
            if (h == null) {
                sendJson(ex, 404, "{\"error\":\"no route " + ex.getRequestMethod() + " " + path + "\"}");
            } else {
                h.handle(ex);
            }
        } catch (Exception e) {
            // the client may have gone away mid-stream
        } finally {
            ex.close();
        }
    }

    public static void sendJson(HttpExchange ex, int status, String json) throws IOException {
        byte[] b = json.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, b.length == 0 ? -1 : b.length);
        if (b.length > 0) {
            try (OutputStream os = ex.getResponseBody()) {
                os.write(b);
            }
        }
    }

    /** Starts a chunked text/event-stream answer; write events with {@link #event}. */
    public static OutputStream startSse(HttpExchange ex) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "text/event-stream");
        ex.getResponseHeaders().set("Cache-Control", "no-cache");
        ex.sendResponseHeaders(200, 0);
        return ex.getResponseBody();
    }

    /** Writes and flushes one event. */
    public static void event(OutputStream os, String name, String data) throws IOException {
        os.write(("event: " + name + "\ndata: " + data + "\n\n").getBytes(StandardCharsets.UTF_8));
        os.flush();
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
