package io.kiln.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.sdk.KilnClient;
import io.kiln.testing.StubServer;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code kiln train --jar}, {@code kiln process} and a processing job's outputs in {@code kiln describe}. */
class ByocCliTest {
    @TempDir
    Path tmp;
    Path dataDir;
    StubServer server;
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();

    @BeforeEach
    void setUp() throws Exception {
        server = new StubServer();
        dataDir = Files.createDirectories(tmp.resolve("kiln"));
        Files.writeString(dataDir.resolve("token"), "tok\n");
        Files.writeString(dataDir.resolve("coordinator.json"), "{\"apiUrl\": \"" + server.url() + "\"}");
    }

    @AfterEach
    void tearDown() {
        server.close();
    }

    private int kiln(String... args) {
        String[] all = Arrays.copyOf(args, args.length + 4);
        all[args.length] = "--api-url";
        all[args.length + 1] = server.url();
        all[args.length + 2] = "--data-dir";
        all[args.length + 3] = dataDir.toString();
        return KilnCli.run(new PrintWriter(out, true), new PrintWriter(err, true), all);
    }

    @Test
    void aModelJarIsStoredContentAddressedAndNamedInTheSpec() throws Exception {
        Path jar = tmp.resolve("model.jar");
        Files.write(jar, new byte[] {'P', 'K', 3, 4, 1, 2, 3});
        server.json("POST /api/v1/training-jobs", 201, "{\"id\":\"job-1\",\"status\":\"Pending\"}");
        assertEquals(0, kiln("train", "--name", "mine", "--jar", jar.toString(), "--model-class", "com.example.Net",
                "--channel", "train=/data", "--workers", "2", "--detach"), err.toString());
        JsonNode spec = KilnClient.MAPPER.readTree(server.requests().get(0).body());
        assertEquals("java", spec.get("algorithm").asText());
        assertEquals("com.example.Net", spec.get("hyperparameters").get("kiln_model_class").asText());
        Path stored = Path.of(java.net.URI.create(spec.get("hyperparameters").get("kiln_jar").asText()));
        assertTrue(stored.getFileName().toString().matches("[0-9a-f]{64}\\.jar"), stored.toString());
        assertTrue(stored.startsWith(dataDir.resolve("artifacts/sources")));
        assertEquals(2, spec.get("resources").get("workers").asInt());

        assertEquals(ExitCodes.USAGE, kiln("train", "--name", "x", "--jar", jar.toString(), "--channel", "train=/d"));
        assertTrue(err.toString().contains("--jar and --model-class go together"), err.toString());
        assertEquals(ExitCodes.USAGE, kiln("train", "--name", "x", "--algorithm", "mlp", "--jar", jar.toString(),
                "--model-class", "a.B", "--channel", "train=/d"));
        assertTrue(err.toString().contains("the algorithm must be 'java', not 'mlp'"), err.toString());
    }

    @Test
    void processBuildsAProcessingJob() throws Exception {
        Path src = Files.createDirectories(tmp.resolve("src"));
        Files.writeString(src.resolve("prep.py"), "print(1)\n");
        assertEquals(0, kiln("process", "--name", "prep", "--entry-point", "prep.py", "--source-dir", src.toString(),
                "--input", "raw=/data/raw", "--output", "train", "--output", "test=/srv/test", "--arg", "--frac",
                "--arg", "0.2", "--env", "MODE=fast", "--memory-mb", "512", "--dry-run"), err.toString());
        JsonNode spec = KilnClient.MAPPER.readTree(out.toString());
        assertEquals("processing", spec.get("algorithm").asText());
        assertEquals("/data/raw", spec.get("channels").get("raw").asText());
        JsonNode hp = spec.get("hyperparameters");
        assertEquals("prep.py", hp.get("sagemaker_program").asText());
        assertEquals("{\"train\":\"\",\"test\":\"/srv/test\"}", hp.get("kiln_processing_outputs").asText());
        assertEquals("[\"--frac\",\"0.2\"]", hp.get("kiln_processing_arguments").asText());
        assertEquals("fast", hp.get("MODE").asText());
        assertEquals(512, spec.get("resources").get("memoryMbPerWorker").asInt());
        assertEquals(1, spec.get("resources").get("workers").asInt());
    }

    @Test
    void describeListsAProcessingJobsOutputs() {
        server.json("GET /api/v1/training-jobs/job-9", 200, "{\"id\":\"job-9\",\"name\":\"prep\",\"status\":\"Completed\","
                + "\"spec\":{\"algorithm\":\"processing\"},\"modelUri\":\"file:///k/jobs/job-9/output/\",\"outputs\":"
                + "{\"train\":\"file:///k/jobs/job-9/output/train/\",\"test\":\"/srv/test\"},\"metrics\":{}}");
        assertEquals(0, kiln("describe", "job-9"), err.toString());
        assertTrue(out.toString().contains("Output train:    file:///k/jobs/job-9/output/train/"), out.toString());
        assertTrue(out.toString().contains("Output test:     /srv/test"), out.toString());
    }
}
