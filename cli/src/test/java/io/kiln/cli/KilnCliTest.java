package io.kiln.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.sdk.KilnClient;
import io.kiln.testing.StubServer;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The commands end to end against a stand-in REST server (JDK HttpServer on 127.0.0.1:0) speaking
 * the docs/api.md contract; the real coordinator is exercised by the integration tests in another
 * module. Output is captured; exit codes are checked.
 */
class KilnCliTest {
    private static final String SPEC = "{\"name\":\"fashion-mlp\",\"algorithm\":\"mlp\",\"hyperparameters\":{\"epochs\":\"1\"},"
            + "\"channels\":{\"train\":\"/data\"},\"resources\":{\"workers\":1}}";

    @TempDir
    Path dataDir;
    StubServer server;
    StringWriter out;
    StringWriter err;

    @BeforeEach
    void setUp() throws Exception {
        server = new StubServer();
        Files.writeString(dataDir.resolve("token"), "tok\n");
        out = new StringWriter();
        err = new StringWriter();
    }

    @AfterEach
    void tearDown() {
        server.close();
    }

    private int kiln(String... args) {
        String[] all = new String[args.length + 4];
        System.arraycopy(args, 0, all, 0, args.length);
        all[args.length] = "--api-url";
        all[args.length + 1] = server.url();
        all[args.length + 2] = "--data-dir";
        all[args.length + 3] = dataDir.toString();
        return KilnCli.run(new PrintWriter(out, true), new PrintWriter(err, true), all);
    }

    private int kilnRaw(String... args) {
        return KilnCli.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
    }

    private static String job(String status, String extra) {
        return "{\"id\":\"job-20261126-143012-a3f9\",\"name\":\"fashion-mlp\",\"status\":\"" + status + "\",\"spec\":" + SPEC
                + ",\"submittedAt\":\"2026-11-26T14:30:12.123Z\",\"startedAt\":\"2026-11-26T14:30:13Z\","
                + "\"endedAt\":\"2026-11-26T14:30:25.5Z\",\"workers\":[\"worker-1\"],"
                + "\"progress\":{\"step\":469,\"totalSteps\":469,\"epoch\":1,\"totalEpochs\":1,\"loss\":0.41,"
                + "\"samplesPerSec\":15000.0,\"computeMsPerStep\":3.1,\"commMsPerStep\":0.0,\"metrics\":{}}" + extra + "}";
    }

    private void metricsStream(String finalStatus, String statusData) {
        server.on("GET /api/v1/training-jobs/job-20261126-143012-a3f9/metrics", ex -> {
            OutputStream os = StubServer.startSse(ex);
            StubServer.event(os, "status", "{\"status\":\"Running\"}");
            for (int step = 100; step <= 400; step += 100) {
                StubServer.event(os, "progress", "{\"step\":" + step + ",\"totalSteps\":469,\"epoch\":1,\"totalEpochs\":1,"
                        + "\"loss\":0.5,\"samplesPerSec\":12000.0}");
            }
            StubServer.event(os, "status", statusData);
            StubServer.event(os, "end", "{\"status\":\"" + finalStatus + "\"}");
        });
    }

    @Test
    void trainFollowsToCompletion() throws Exception {
        server.json("POST /api/v1/training-jobs", 201, job("Pending", ""));
        metricsStream("Completed", "{\"status\":\"Completed\",\"metrics\":{\"test_accuracy\":0.8421},"
                + "\"modelUri\":\"file:/k/artifacts/jobs/job-1/model/\",\"failureReason\":\"\"}");
        server.json("GET /api/v1/training-jobs/job-20261126-143012-a3f9", 200, job("Completed",
                ",\"metrics\":{\"test_accuracy\":0.8421,\"train_loss\":0.41},\"modelUri\":\"file:/k/artifacts/jobs/job-1/model/\""));
        Path file = dataDir.resolve("job.yaml");
        Files.writeString(file, "name: fashion-mlp\nalgorithm: mlp\nhyperparameters: {epochs: 5}\nchannels: {train: /data}\n");

        int code = kiln("train", "-f", file.toString(), "--epochs", "1", "--workers", "1");

        assertEquals(0, code, err.toString());
        String o = out.toString();
        assertTrue(o.contains("Job job-20261126-143012-a3f9 (fashion-mlp) submitted: Pending"), o);
        assertTrue(o.contains("step 400/469"), o);
        assertTrue(o.contains("Job job-20261126-143012-a3f9 Completed\n"), o);
        assertTrue(o.contains("  test accuracy  0.8421\n"), o);
        assertTrue(o.contains("  model          file:/k/artifacts/jobs/job-1/model/\n"), o);
        assertTrue(o.contains("  training time  12.5s\n"), o);
        JsonNode sent = KilnClient.MAPPER.readTree(server.requests().get(0).body());
        assertEquals("1", sent.get("hyperparameters").get("epochs").asText(), "flag overrode the file");
        assertEquals(1, sent.get("resources").get("workers").asInt());
        assertEquals("Bearer tok", server.requests().get(0).authorization());
    }

    @Test
    void aFailedJobExitsOneWithItsReason() {
        server.json("POST /api/v1/training-jobs", 201, job("Pending", ""));
        metricsStream("Failed", "{\"status\":\"Failed\",\"metrics\":{},\"modelUri\":\"\",\"failureReason\":\"worker-1 lost\"}");
        server.json("GET /api/v1/training-jobs/job-20261126-143012-a3f9", 200,
                job("Failed", ",\"failureReason\":\"worker-1 lost\""));
        int code = kiln("train", "--name", "fashion-mlp", "--algorithm", "mlp", "--channel", "train=/data");
        assertEquals(1, code);
        assertTrue(out.toString().contains("  failure        worker-1 lost\n"), out.toString());
    }

    @Test
    void detachPrintsOnlyTheId() {
        server.json("POST /api/v1/training-jobs", 201, job("Pending", ""));
        assertEquals(0, kiln("train", "--name", "n", "--algorithm", "mlp", "--channel", "train=/d", "--detach"));
        assertEquals("job-20261126-143012-a3f9\n", out.toString());
    }

    @Test
    void rejectedSpecPrintsEveryDetailLine() {
        server.json("POST /api/v1/training-jobs", 400, "{\"error\":\"invalid job spec\",\"details\":"
                + "[\"name: at most 63 chars of [a-z0-9-]\",\"algorithm: unknown 'svm' (known: mlp, cnn)\"]}");
        int code = kiln("train", "--name", "Bad_Name", "--algorithm", "svm", "--channel", "train=/d");
        assertEquals(3, code);
        String e = err.toString();
        assertTrue(e.contains("error: invalid job spec (HTTP 400)"), e);
        assertTrue(e.contains("\n  - name: at most 63 chars of [a-z0-9-]\n"), e);
        assertTrue(e.contains("\n  - algorithm: unknown 'svm' (known: mlp, cnn)\n"), e);
    }

    @Test
    void usageErrorsExitTwo() throws Exception {
        assertEquals(2, kilnRaw("train"));
        assertTrue(err.toString().contains("give a job file"), err.toString());
        assertEquals(2, kilnRaw("train", "--name", "x", "--hp", "novalue"));
        assertEquals(2, kilnRaw("train", "--epochs", "many"));
        assertEquals(2, kilnRaw("nosuchcommand"));
        assertEquals(2, kilnRaw("describe"));
        assertEquals(2, kilnRaw());
        Path bad = dataDir.resolve("bad.yaml");
        Files.writeString(bad, "name: x\nhyperparams: {a: 1}\n");
        assertEquals(2, kilnRaw("train", "-f", bad.toString()));
        assertTrue(err.toString().contains("unknown field 'hyperparams'"), err.toString());
        assertEquals(2, kilnRaw("train", "--name", "x", "--algorithm", "mlp"));
        assertTrue(err.toString().contains("channels.train"), err.toString());
    }

    @Test
    void dryRunPrintsTheSpec() throws Exception {
        assertEquals(0, kilnRaw("train", "--name", "x", "--algorithm", "cnn", "--channel", "train=/d",
                "--hp", "learning_rate=0.1", "--batch-size", "32", "--dry-run"));
        JsonNode s = KilnClient.MAPPER.readTree(out.toString());
        assertEquals("0.1", s.get("hyperparameters").get("learning_rate").asText());
        assertEquals("32", s.get("hyperparameters").get("batch_size").asText());
        assertTrue(server.requests().isEmpty());
    }

    @Test
    void noCoordinatorExitsThree() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        assertEquals(3, kilnRaw("jobs", "--api-url", "http://127.0.0.1:" + port, "--data-dir", dataDir.toString()));
        assertTrue(err.toString().contains("no Kiln coordinator at http://127.0.0.1:" + port + ": start one with `kiln local up`"),
                err.toString());
    }

    @Test
    void unauthorizedExitsThreeWithAHintButNoToken() {
        server.json("GET /api/v1/training-jobs", 401, "{\"error\":\"missing or invalid bearer token\"}");
        assertEquals(3, kiln("jobs"));
        assertTrue(err.toString().contains("missing or invalid bearer token (HTTP 401)"), err.toString());
        assertTrue(err.toString().contains("KILN_TOKEN"), err.toString());
        assertFalse(err.toString().contains("tok\n"));
    }

    @Test
    void jobsTable() {
        server.json("GET /api/v1/training-jobs", 200, "{\"jobs\":[" + job("Completed", ",\"metrics\":{\"test_accuracy\":0.8421}")
                + "," + job("Pending", "").replace("job-20261126-143012-a3f9", "job-2").replace(
                        "\"step\":469,\"totalSteps\":469", "\"step\":0,\"totalSteps\":0") + "]}");
        assertEquals(0, kiln("jobs"));
        String[] lines = out.toString().split("\n");
        assertEquals(3, lines.length, out.toString());
        assertTrue(lines[0].matches("ID\\s+NAME\\s+STATUS\\s+PROGRESS\\s+ACCURACY\\s+SUBMITTED"), lines[0]);
        assertTrue(lines[1].matches("job-20261126-143012-a3f9\\s+fashion-mlp\\s+Completed\\s+469/469 \\(100%\\)\\s+0\\.8421\\s+2026-11-2\\d \\d\\d:\\d\\d:\\d\\d"),
                lines[1]);
        assertTrue(lines[2].matches("job-2\\s+fashion-mlp\\s+Pending\\s+-\\s+-\\s+.*"), lines[2]);
    }

    @Test
    void describeTextAndJson() throws Exception {
        server.json("GET /api/v1/training-jobs/job-20261126-143012-a3f9", 200, job("Failed",
                ",\"metrics\":{\"train_loss\":0.41},\"failureReason\":\"out of memory\",\"history\":["
                        + "{\"at\":\"2026-11-26T14:30:12.123Z\",\"event\":\"Submitted\",\"detail\":\"by local-admin\"},"
                        + "{\"at\":\"2026-11-26T14:30:25.5Z\",\"event\":\"Failed\",\"detail\":\"out of memory\"}]"));
        assertEquals(0, kiln("describe", "job-20261126-143012-a3f9"));
        String o = out.toString();
        assertTrue(o.contains("Status:          Failed"), o);
        assertTrue(o.contains("Algorithm:       mlp"), o);
        assertTrue(o.contains("Hyperparameters: epochs=1"), o);
        assertTrue(o.contains("Progress:        469/469 (100%), epoch 1/1"), o);
        assertTrue(o.contains("Metrics:         train_loss=0.4100"), o);
        assertTrue(o.contains("Failure:         out of memory"), o);
        assertTrue(o.contains("History:"), o);
        assertTrue(o.matches("(?s).*\\n  AT\\s+EVENT\\s+DETAIL\\n.*Submitted\\s+by local-admin\\n.*"), o);

        out.getBuffer().setLength(0);
        assertEquals(0, kiln("describe", "--output", "json", "job-20261126-143012-a3f9"));
        assertEquals("out of memory", KilnClient.MAPPER.readTree(out.toString()).get("failureReason").asText());
    }

    @Test
    void unknownJobExitsThree() {
        server.json("GET /api/v1/training-jobs/nope", 404, "{\"error\":\"unknown job nope\"}");
        assertEquals(3, kiln("describe", "nope"));
        assertTrue(err.toString().contains("unknown job nope (HTTP 404)"), err.toString());
    }

    @Test
    void logsStopAndCluster() {
        server.on("GET /api/v1/training-jobs/j1/logs", ex -> {
            OutputStream os = StubServer.startSse(ex);
            StubServer.event(os, "log", "{\"at\":\"2026-11-26T14:30:12.5Z\",\"level\":\"INFO\",\"worker\":\"worker-1\",\"message\":\"epoch 1 done\"}");
            StubServer.event(os, "end", "{\"status\":\"Completed\"}");
        });
        assertEquals(0, kiln("logs", "-f", "j1"));
        assertTrue(out.toString().matches("\\d\\d:\\d\\d:\\d\\d\\.500 INFO  worker-1  epoch 1 done\\n"), out.toString());
        assertEquals("follow=true", server.requests().get(0).query());

        server.json("POST /api/v1/training-jobs/j1/stop", 409, "{\"error\":\"job j1 is already Completed\"}");
        assertEquals(3, kiln("stop", "j1"));
        assertTrue(err.toString().contains("job j1 is already Completed (HTTP 409)"), err.toString());

        server.json("POST /api/v1/training-jobs/j2/stop", 202, job("Stopping", "").replace("job-20261126-143012-a3f9", "j2"));
        out.getBuffer().setLength(0);
        assertEquals(0, kiln("stop", "j2"));
        assertEquals("j2: Stopping\n", out.toString());

        server.json("GET /api/v1/cluster", 200, "{\"workers\":[{\"id\":\"worker-1\",\"address\":\"pekko://kiln@127.0.0.1:41234\","
                + "\"cpus\":1,\"memoryMb\":4096,\"gpus\":0,\"freeCpus\":0,\"freeGpus\":0,\"runningTasks\":[\"j2-r0\"]}]}");
        out.getBuffer().setLength(0);
        assertEquals(0, kiln("cluster"));
        assertTrue(out.toString().contains("(1 worker)"), out.toString());
        assertTrue(out.toString().matches("(?s).*worker-1\\s+pekko://kiln@127.0.0.1:41234\\s+0/1\\s+0/0\\s+4096\\s+j2-r0\\n"),
                out.toString());
    }

    @Test
    void helpEverywhere() {
        for (String[] cmd : new String[][] {{"--help"}, {"local", "--help"}, {"local", "up", "--help"}, {"local", "down", "--help"},
                {"local", "status", "--help"}, {"train", "--help"}, {"jobs", "--help"}, {"describe", "--help"},
                {"logs", "--help"}, {"stop", "--help"}, {"cluster", "--help"}, {"demo", "--help"}}) {
            out.getBuffer().setLength(0);
            assertEquals(0, kilnRaw(cmd), String.join(" ", cmd));
            assertTrue(out.toString().startsWith("Usage: kiln"), out.toString());
        }
    }

    @Test
    void demoWithoutDatasetSaysWhatToInstall() {
        assertEquals(2, kilnRaw("demo", "--dataset", dataDir.resolve("missing").toString()));
        assertTrue(err.toString().contains("apt-get install -y dataset-fashion-mnist"), err.toString());
    }

    @Test
    void localStatusAndDownWithNothingRunning() {
        assertEquals(3, kilnRaw("local", "status", "--data-dir", dataDir.toString()));
        assertTrue(out.toString().contains("No local Kiln cluster is running"), out.toString());
        assertEquals(0, kilnRaw("local", "down", "--data-dir", dataDir.toString()));
        assertTrue(out.toString().contains("No local Kiln cluster recorded"), out.toString());
    }
}
