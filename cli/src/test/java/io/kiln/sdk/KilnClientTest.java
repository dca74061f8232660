package io.kiln.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.testing.StubServer;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * KilnClient against a stand-in server over a real socket (JDK HttpServer on 127.0.0.1:0). The
 * real coordinator is exercised by the integration tests in another module.
 */
class KilnClientTest {
    private static final String JOB = "{\"id\":\"job-1\",\"name\":\"fashion-mlp\",\"status\":\"Running\","
            + "\"spec\":{\"algorithm\":\"mlp\"},\"submittedAt\":\"2026-11-26T14:30:12.123Z\",\"workers\":[\"worker-1\"],"
            + "\"progress\":{\"step\":120,\"totalSteps\":469,\"epoch\":1,\"totalEpochs\":1,\"loss\":0.52,"
            + "\"samplesPerSec\":15000.0,\"metrics\":{}},\"metrics\":{\"test_accuracy\":0.842},\"modelUri\":\"file:/m/\","
            + "\"failureReason\":\"\",\"history\":[{\"at\":\"2026-11-26T14:30:12.123Z\",\"event\":\"Submitted\","
            + "\"detail\":\"by local-admin\"}],\"somethingNew\":1}";

    private StubServer server;
    private KilnClient client;

    @BeforeEach
    void setUp() throws Exception {
        server = new StubServer();
        client = new KilnClient(server.url(), "s3cret-token");
    }

    @AfterEach
    void tearDown() {
        server.close();
    }

    @Test
    void typedCallsSendTheTokenAndParseViews() {
        server.json("GET /api/v1/training-jobs/job-1", 200, JOB)
                .json("GET /api/v1/training-jobs", 200, "{\"jobs\":[" + JOB + "]}")
                .json("GET /api/v1/cluster", 200, "{\"workers\":[{\"id\":\"worker-1\",\"address\":\"pekko://kiln@127.0.0.1:41234\","
                        + "\"cpus\":1,\"memoryMb\":4096,\"gpus\":0,\"freeCpus\":1,\"freeGpus\":0,\"runningTasks\":[\"job-1-r0\"]}]}")
                .json("POST /api/v1/training-jobs", 201, JOB)
                .json("POST /api/v1/training-jobs/job-1/stop", 202, JOB.replace("Running", "Stopping"))
                .json("GET /health/ready", 200, "{\"status\":\"ready\",\"workers\":1}");

        JobView j = client.getJob("job-1");
        assertEquals("Running", j.status());
        assertEquals(469, j.progress().totalSteps());
        assertEquals(0.842, j.testAccuracy(), 1e-9);
        assertEquals("Submitted", j.history().get(0).event());
        assertEquals("mlp", j.spec().get("algorithm").asText());
        assertFalse(j.isFinal());

        assertEquals(1, client.listJobs().size());
        List<WorkerView> ws = client.cluster();
        assertEquals("worker-1", ws.get(0).id());
        assertEquals(List.of("job-1-r0"), ws.get(0).runningTasks());
        assertEquals("Stopping", client.stopJob("job-1").status());
        assertEquals(1, client.ready().get("workers").asInt());
        assertTrue(client.isReady());

        JobView created = client.createJob(JobSpec.named("fashion-mlp").algorithm("mlp")
                .channel("train", "/data").hyperparameter("epochs", 1).workers(2));
        assertEquals("job-1", created.id());

        StubServer.Request post = server.requests().stream()
                .filter(r -> r.method().equals("POST") && r.path().equals("/api/v1/training-jobs")).findFirst().get();
        assertEquals("{\"name\":\"fashion-mlp\",\"algorithm\":\"mlp\",\"hyperparameters\":{\"epochs\":\"1\"},"
                + "\"channels\":{\"train\":\"/data\"},\"resources\":{\"workers\":2}}", post.body());
        for (StubServer.Request r : server.requests()) {
            if (r.path().startsWith("/api/")) {
                assertEquals("Bearer s3cret-token", r.authorization(), r.path());
            } else {
                assertNull(r.authorization(), "health probes carry no token");
            }
        }
    }

    @Test
    void createJobAcceptsJsonStringsAndMaps() {
        server.json("POST /api/v1/training-jobs", 201, JOB);
        client.createJob("{\"name\":\"a\"}");
        client.createJob(Map.of("name", "b"));
        assertEquals("{\"name\":\"a\"}", server.requests().get(0).body());
        assertEquals("{\"name\":\"b\"}", server.requests().get(1).body());
        assertThrows(IllegalArgumentException.class, () -> client.createJob("{not json"));
    }

    @Test
    void badRequestCarriesErrorAndDetails() {
        server.json("POST /api/v1/training-jobs", 400,
                "{\"error\":\"invalid job spec\",\"details\":[\"name: must match [a-z0-9-]{1,63}\",\"algorithm: unknown 'svm'\"]}");
        KilnApiException e = assertThrows(KilnApiException.class, () -> client.createJob(Map.of("name", "Bad Name")));
        assertEquals(400, e.status());
        assertEquals("invalid job spec", e.error());
        assertEquals(List.of("name: must match [a-z0-9-]{1,63}", "algorithm: unknown 'svm'"), e.details());
        assertTrue(e.getMessage().startsWith("invalid job spec (HTTP 400): name: must"), e.getMessage());
    }

    @Test
    void unauthorizedIsAnApiExceptionThatNeverShowsTheToken() {
        server.json("GET /api/v1/training-jobs", 401, "{\"error\":\"missing or invalid bearer token\"}");
        KilnApiException e = assertThrows(KilnApiException.class, () -> client.listJobs());
        assertEquals(401, e.status());
        assertEquals("missing or invalid bearer token", e.error());
        assertTrue(e.details().isEmpty());
        assertFalse(e.getMessage().contains("s3cret"));
        assertFalse(client.toString().contains("s3cret"));
    }

    @Test
    void nonJsonAndEmptyErrorBodies() {
        server.on("GET /api/v1/training-jobs/x", ex -> {
            byte[] b = "upstream exploded".getBytes();
            ex.sendResponseHeaders(500, b.length);
            ex.getResponseBody().write(b);
        });
        server.json("GET /api/v1/training-jobs/y", 404, "");
        server.json("GET /health/ready", 503, "{\"status\":\"starting\"}");
        KilnApiException e500 = assertThrows(KilnApiException.class, () -> client.getJob("x"));
        assertEquals(500, e500.status());
        assertEquals("upstream exploded", e500.error());
        KilnApiException e404 = assertThrows(KilnApiException.class, () -> client.getJob("y"));
        assertEquals("not found", e404.error());
        KilnApiException e503 = assertThrows(KilnApiException.class, () -> client.ready());
        assertEquals(503, e503.status());
        assertFalse(client.isReady());
    }

    @Test
    void invocationsGoToTheDataPlaneUrlOfTheEndpointView() throws Exception {
        try (StubServer plane = new StubServer(); StubServer moved = new StubServer()) {
            for (StubServer p : List.of(plane, moved)) {
                p.on("POST /endpoints/ep/invocations", ex -> {
                    ex.getResponseHeaders().set("X-Kiln-Variant", "a");
                    StubServer.sendJson(ex, 200, "{\"predictions\":[[1]]}");
                });
            }
            server.json("GET /api/v1/endpoints/ep", 200, "{\"name\":\"ep\",\"invocationUrl\":\"" + plane.url()
                    + "/endpoints/ep/invocations\"}")
                    .json("POST /endpoints/nope/invocations", 404, "{\"error\":\"no endpoint nope\"}");
            for (int i = 0; i < 3; i++) {
                KilnClient.Invocation r = client.invokeEndpoint("ep", "application/json", "{\"instances\":[[1]]}", null);
                assertEquals(200, r.status(), r.body());
                assertEquals("a", r.variant());
            }
            assertEquals(3, plane.requests().size());
            assertEquals("Bearer s3cret-token", plane.requests().get(0).authorization());
            assertEquals(List.of("GET /api/v1/endpoints/ep"), server.requests().stream().map(x -> x.method() + " " + x.path()).toList(),
                    "the data-plane URL is asked once, and invocations do not go to the API port");

            // no such endpoint: the API port's router answers
            assertEquals(404, client.invokeEndpoint("nope", "application/json", "{}", null).status());

            // the coordinator restarted: its data-plane port moved; the old one refuses, the view is asked again
            String old = plane.url();
            plane.close();
            server.json("GET /api/v1/endpoints/ep", 200, "{\"invocationUrl\":\"" + moved.url() + "/endpoints/ep/invocations\"}");
            assertEquals(200, client.invokeEndpoint("ep", "application/json", "{}", null).status(), "after " + old);
            assertEquals(1, moved.requests().size());
        }
    }

    @Test
    void connectionRefusedSaysHowToStartACoordinator() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        KilnClient nobody = new KilnClient("http://127.0.0.1:" + port + "/", "t");
        KilnConnectionException e = assertThrows(KilnConnectionException.class, nobody::listJobs);
        assertEquals("no Kiln coordinator at http://127.0.0.1:" + port + ": start one with `kiln local up`", e.getMessage());
        assertEquals("http://127.0.0.1:" + port, e.apiUrl());
        assertThrows(KilnConnectionException.class, () -> nobody.streamLogs("j", true, l -> { }));
        assertFalse(nobody.isReady());
    }

    @Test
    void metricsStreamIsDeliveredLiveOverTheSocket() throws Exception {
        CountDownLatch firstSeen = new CountDownLatch(1);
        server.on("GET /api/v1/training-jobs/job-1/metrics", ex -> {
            OutputStream os = StubServer.startSse(ex);
            os.write(": hello\n\n".getBytes());
            StubServer.event(os, "status", "{\"status\":\"Running\",\"metrics\":{},\"modelUri\":\"\",\"failureReason\":\"\"}");
            // The rest is only sent once the client has handled the first event: proves streaming, not buffering.
            if (!firstSeen.await(10, TimeUnit.SECONDS)) {
                throw new AssertionError("client did not see the first event while the stream was open");
            }
            StubServer.event(os, "progress", "{\"step\":469,\"totalSteps\":469,\"loss\":0.4}");
            StubServer.event(os, "status", "{\"status\":\"Completed\",\"metrics\":{\"test_accuracy\":\"0.85\"},"
                    + "\"modelUri\":\"file:/m/\",\"failureReason\":\"\"}");
            StubServer.event(os, "end", "{\"status\":\"Completed\"}");
        });
        List<SseEvent> events = new ArrayList<>();
        String end = client.streamMetrics("job-1", true, ev -> {
            events.add(ev);
            firstSeen.countDown();
        });
        assertEquals("Completed", end);
        assertEquals(List.of("status", "progress", "status", "end"), events.stream().map(SseEvent::event).toList());
        StatusEvent done = events.get(2).as(StatusEvent.class);
        assertTrue(done.isFinal());
        assertEquals(0.85, done.metric("test_accuracy"), 1e-9, "numeric strings are read as numbers");
        StubServer.Request r = server.requests().get(0);
        assertEquals("follow=true", r.query());
        assertEquals("Bearer s3cret-token", r.authorization());
    }

    @Test
    void logStreamWithoutEndReturnsNull() {
        server.on("GET /api/v1/training-jobs/job-1/logs", ex -> {
            OutputStream os = StubServer.startSse(ex);
            StubServer.event(os, "log", "{\"at\":\"2026-11-26T14:30:12Z\",\"level\":\"INFO\",\"worker\":\"worker-1\",\"message\":\"epoch 1\"}");
            StubServer.event(os, "log", "{\"at\":\"2026-11-26T14:30:13Z\",\"level\":\"WARN\",\"worker\":\"worker-2\",\"message\":\"slow\"}");
        });
        List<LogLine> lines = new ArrayList<>();
        assertNull(client.streamLogs("job-1", false, lines::add));
        assertEquals(2, lines.size());
        assertEquals(new LogLine("2026-11-26T14:30:13Z", "WARN", "worker-2", "slow"), lines.get(1));
        assertEquals("follow=false", server.requests().get(0).query());
    }

    @Test
    void streamErrorsAreMappedToo() {
        server.json("GET /api/v1/training-jobs/nope/metrics", 404, "{\"error\":\"unknown job nope\"}");
        KilnApiException e = assertThrows(KilnApiException.class, () -> client.streamMetrics("nope", true, ev -> { }));
        assertEquals(404, e.status());
        assertEquals("unknown job nope", e.error());
    }

    @Test
    void aThrowingConsumerAbortsTheStream() {
        server.on("GET /api/v1/training-jobs/job-1/metrics", ex -> {
            OutputStream os = StubServer.startSse(ex);
            for (int i = 0; i < 1000; i++) {
                StubServer.event(os, "progress", "{\"step\":" + i + "}");
                Thread.sleep(5);
            }
        });
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> client.streamMetrics("job-1", true, ev -> {
            throw new IllegalStateException("enough");
        }));
        assertEquals("enough", e.getMessage());
    }

    @Test
    void awaitFinalPolls() {
        int[] calls = {0};
        server.on("GET /api/v1/training-jobs/job-1", ex -> StubServer.sendJson(ex, 200,
                ++calls[0] < 3 ? JOB : JOB.replace("Running", "Completed")));
        JobView v = client.awaitFinal("job-1", Duration.ofSeconds(10), Duration.ofMillis(10));
        assertEquals("Completed", v.status());
        assertEquals(3, calls[0]);
    }

    @Test
    void settingsFromEnvironmentAndDataDir(@TempDir Path dir) throws Exception {
        // nothing: defaults
        KilnSettings s = KilnSettings.resolve(Map.of("KILN_DATA_DIR", dir.toString()), null, null);
        assertEquals(dir.toAbsolutePath(), s.dataDir());
        assertEquals("http://127.0.0.1:7480", s.apiUrl());
        assertNull(s.token());

        // files written by the coordinator
        Files.writeString(dir.resolve("token"), "file-token\n");
        Files.writeString(dir.resolve("coordinator.json"), "{\"apiUrl\":\"" + server.url() + "/\",\"pid\":1}");
        s = KilnSettings.resolve(Map.of("KILN_DATA_DIR", dir.toString()), null, null);
        assertEquals(server.url(), s.apiUrl(), "apiUrl from coordinator.json, trailing slash removed");
        assertEquals("file-token", s.token());
        assertFalse(s.toString().contains("file-token"));

        // environment wins over files; explicit values win over the environment
        s = KilnSettings.resolve(Map.of("KILN_DATA_DIR", dir.toString(), "KILN_API_URL", "http://h:1",
                "KILN_TOKEN", "env-token"), null, null);
        assertEquals("http://h:1", s.apiUrl());
        assertEquals("env-token", s.token());
        assertEquals("KILN_TOKEN", s.tokenSource());
        s = KilnSettings.resolve(Map.of("KILN_API_URL", "http://h:1"), dir, "http://explicit:2");
        assertEquals("http://explicit:2", s.apiUrl());
        assertEquals(dir, s.dataDir());

        // the client re-reads the token file at each request (the coordinator may write it later)
        server.json("GET /api/v1/cluster", 200, "{\"workers\":[]}");
        KilnClient c = KilnClient.forSettings(KilnSettings.resolve(Map.of("KILN_DATA_DIR", dir.toString()), null, null));
        c.cluster();
        Files.writeString(dir.resolve("token"), "rotated");
        c.cluster();
        assertEquals("Bearer file-token", server.requests().get(0).authorization());
        assertEquals("Bearer rotated", server.requests().get(1).authorization());
        JsonNode raw = c.getJson("/api/v1/cluster");
        assertTrue(raw.get("workers").isArray());
    }
}
