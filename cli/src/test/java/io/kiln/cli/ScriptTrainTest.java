package io.kiln.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.cli.spec.JobSpecException;
import io.kiln.cli.spec.ScriptMode;
import io.kiln.sdk.KilnClient;
import io.kiln.testing.StubServer;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code kiln train --entry-point/--source-dir/--metric}: packaging and the job spec it sends (script mode). */
class ScriptTrainTest {
    private static final String JOB = "{\"id\":\"job-1\",\"name\":\"my-script\",\"status\":\"Pending\",\"spec\":{},"
            + "\"submittedAt\":\"2026-11-26T14:30:12.123Z\"}";

    @TempDir
    Path tmp;
    Path dataDir;
    Path src;
    StubServer server;
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();

    @BeforeEach
    void setUp() throws Exception {
        server = new StubServer();
        dataDir = Files.createDirectories(tmp.resolve("kiln"));
        Files.writeString(dataDir.resolve("token"), "tok\n");
        // the local cluster of this data dir: the CLI writes sources into its artifact store directly
        Files.writeString(dataDir.resolve("coordinator.json"), "{\"apiUrl\": \"" + server.url() + "\"}");
        src = Files.createDirectories(tmp.resolve("src"));
        Files.writeString(src.resolve("train.py"), "print('loss: 0.5')\n");
        Files.createDirectories(src.resolve("pkg"));
        Files.writeString(src.resolve("pkg/model.py"), "X = 1\n");
        Files.writeString(src.resolve("run.sh"), "echo hi\n");
        Files.setPosixFilePermissions(src.resolve("run.sh"), PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.createDirectories(src.resolve(".git/objects"));
        Files.writeString(src.resolve(".git/HEAD"), "ref: refs/heads/main\n");
        Path deep = src.resolve("d".repeat(60) + "/" + "e".repeat(60));
        Files.createDirectories(deep);
        Files.writeString(deep.resolve("long.txt"), "long\n");
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

    private JsonNode sent() throws Exception {
        return KilnClient.MAPPER.readTree(server.requests().get(0).body());
    }

    @Test
    void packagesTheSourceIntoTheArtifactStoreAndSubmitsAScriptJob() throws Exception {
        server.json("POST /api/v1/training-jobs", 201, JOB);
        int code = kiln("train", "--name", "my-script", "--entry-point", "train.py", "--source-dir", src.toString(),
                "--channel", "train=" + tmp, "--hp", "epochs=3", "--metric", "loss=loss: ([0-9.]+)",
                "--metric", "acc= acc=([0-9.]+)", "--workers", "2", "--detach");
        assertEquals(0, code, err.toString());
        JsonNode spec = sent();
        assertEquals("script", spec.get("algorithm").asText());
        JsonNode hp = spec.get("hyperparameters");
        assertEquals("train.py", hp.get("sagemaker_program").asText());
        assertEquals("3", hp.get("epochs").asText());
        assertEquals(2, spec.get("resources").get("workers").asInt());
        JsonNode metrics = KilnClient.MAPPER.readTree(hp.get("kiln_metric_definitions").asText());
        assertEquals("loss", metrics.get(0).get("Name").asText());
        assertEquals("loss: ([0-9.]+)", metrics.get(0).get("Regex").asText());
        assertEquals(" acc=([0-9.]+)", metrics.get(1).get("Regex").asText(), "a regex is kept as typed");

        URI uri = URI.create(hp.get("sagemaker_submit_directory").asText());
        Path archive = Path.of(uri);
        assertTrue(archive.startsWith(dataDir.resolve("artifacts/sources")), archive.toString());
        assertTrue(archive.getFileName().toString().matches("[0-9a-f]{64}\\.tar\\.gz"), archive.toString());
        assertTrue(err.toString().contains("Packaged " + src + " (4 files"), err.toString());

        // GNU tar reads it: no .git, long names intact, execute bit kept
        Process tar = new ProcessBuilder("tar", "-tvzf", archive.toString()).redirectErrorStream(true).start();
        String listing = new String(tar.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, tar.waitFor(), listing);
        List<String> names = listing.lines().map(l -> l.substring(l.lastIndexOf(' ') + 1)).sorted()
                .collect(Collectors.toList());
        assertEquals(List.of("d".repeat(60) + "/" + "e".repeat(60) + "/long.txt", "pkg/model.py", "run.sh", "train.py"),
                names);
        assertFalse(listing.contains(".git"), listing);
        assertTrue(listing.lines().anyMatch(l -> l.startsWith("-rwxr-xr-x") && l.endsWith("run.sh")), listing);

        // the same source packages to the same archive (content-addressed, reproducible)
        server.requests().clear();
        assertEquals(0, kiln("train", "--name", "my-script", "--entry-point", "train.py", "--source-dir",
                src.toString(), "--detach"));
        assertEquals(uri.toString(), sent().get("hyperparameters").get("sagemaker_submit_directory").asText());
        try (var files = Files.list(dataDir.resolve("artifacts/sources"))) {
            assertEquals(1, files.count());
        }
    }

    @Test
    void aRemoteClusterGetsTheSourceThroughTheUploadApi() throws Exception {
        Files.delete(dataDir.resolve("coordinator.json")); // --api-url names a cluster that is not this data dir's
        String sha = io.kiln.cli.spec.SourcePackage.of(src).sha256();
        String stored = "file:///srv/kiln/artifacts/sources/" + sha + ".tar.gz";
        server.json("PUT /api/v1/sources/" + sha + ".tar.gz", 201, "{\"uri\": \"" + stored + "\", \"sha256\": \""
                + sha + "\"}");
        server.json("POST /api/v1/training-jobs", 201, JOB);
        assertEquals(0, kiln("train", "--name", "remote", "--entry-point", "train.py", "--source-dir", src.toString(),
                "--detach"), err.toString());
        assertEquals("PUT", server.requests().get(0).method());
        assertEquals("Bearer tok", server.requests().get(0).authorization());
        JsonNode spec = KilnClient.MAPPER.readTree(server.requests().get(1).body());
        assertEquals(stored, spec.get("hyperparameters").get("sagemaker_submit_directory").asText());
        assertFalse(Files.exists(dataDir.resolve("artifacts/sources")), "nothing written locally");
        assertTrue(err.toString().contains("(uploaded to " + server.url() + ")"), err.toString());

        // an upload the coordinator refuses stops the submission with its reason
        server.requests().clear();
        server.json("PUT /api/v1/sources/" + sha + ".tar.gz", 413, "{\"error\": \"the upload is larger than 1 MB\"}");
        assertEquals(ExitCodes.USAGE, kiln("train", "--name", "remote", "--entry-point", "train.py", "--source-dir",
                src.toString(), "--detach"));
        assertTrue(err.toString().contains("the upload is larger than 1 MB"), err.toString());
        assertEquals(1, server.requests().size(), "no job submitted");
    }

    @Test
    void dryRunWritesNothingAndAnEntryPointAloneIsPackagedAlone() throws Exception {
        assertEquals(0, kiln("train", "--name", "s", "--entry-point", src.resolve("train.py").toString(), "--dry-run"),
                err.toString());
        JsonNode spec = KilnClient.MAPPER.readTree(out.toString());
        assertEquals("script", spec.get("algorithm").asText());
        assertEquals("train.py", spec.get("hyperparameters").get("sagemaker_program").asText());
        assertFalse(spec.has("channels"));
        assertFalse(Files.exists(dataDir.resolve("artifacts/sources")));
        assertTrue(err.toString().contains("Would package " + src.resolve("train.py") + " (1 files"), err.toString());
    }

    @Test
    void entryPointsResolveInsideTheSourceFolder() {
        assertEquals("pkg/model.py", ScriptMode.resolve("pkg/model.py", src, tmp).program());
        // a path from the current folder into the source folder works too
        assertEquals("pkg/model.py", ScriptMode.resolve("src/pkg/model.py", Path.of("src"), tmp).program());
        assertEquals(src, ScriptMode.resolve("train.py", Path.of("src"), tmp).packageRoot());
        JobSpecException e = assertThrows(JobSpecException.class, () -> ScriptMode.resolve("trian.py", src, tmp));
        assertTrue(e.getMessage().contains("entry point trian.py not found in --source-dir"), e.getMessage());
        assertThrows(JobSpecException.class, () -> ScriptMode.resolve("../ScriptTrainTest.java", src, tmp));
    }

    @Test
    void badScriptFlagsAreUsageErrors() {
        assertEquals(2, kiln("train", "--name", "s", "--entry-point", "nope.py", "--source-dir", src.toString()));
        assertTrue(err.toString().contains("entry point nope.py not found"), err.toString());
        assertEquals(2, kiln("train", "--name", "s", "--entry-point", "train.py", "--source-dir", src.toString(),
                "--metric", "loss=(unclosed"));
        assertTrue(err.toString().contains("--metric loss: invalid regular expression"), err.toString());
        assertEquals(2, kiln("train", "--name", "s", "--entry-point", "train.py", "--source-dir", src.toString(),
                "--metric", "noregex"));
        assertEquals(2, kiln("train", "--name", "s", "--algorithm", "mlp", "--entry-point", "train.py", "--source-dir",
                src.toString()));
        assertTrue(err.toString().contains("the algorithm must be 'script', not 'mlp'"), err.toString());
        assertEquals(2, kiln("train", "--name", "s", "--source-dir", src.toString()));
        assertTrue(err.toString().contains("--source-dir needs --entry-point"), err.toString());
        assertEquals(2, kiln("train", "--name", "s", "--algorithm", "mlp", "--channel", "train=/d", "--metric", "a=b"));
        assertTrue(err.toString().contains("--metric is for scripts"), err.toString());
        assertEquals(2, kiln("train", "--name", "s", "--algorithm", "script"));
        assertTrue(err.toString().contains("the script's entry point"), err.toString());
        assertFalse(err.toString().contains("channels.train"), err.toString());
        assertTrue(server.requests().isEmpty());
    }
}
