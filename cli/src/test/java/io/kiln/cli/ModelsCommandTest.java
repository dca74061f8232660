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
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code kiln models}: what it sends and how it shows the answers, against a stand-in server
 * speaking docs/registry.md (the real coordinator answers in RegistryEndToEndTest).
 */
class ModelsCommandTest {
    static final String VERSION = "{\"group\":\"churn\",\"version\":2,\"status\":\"Approved\","
            + "\"artifactUri\":\"file:/m/\",\"framework\":\"torchscript\",\"description\":\"\","
            + "\"signature\":{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,4]}],\"outputs\":[]},"
            + "\"metrics\":{\"auc\":0.91},\"lineage\":{\"trainingJobId\":\"job-1\",\"trainingJobName\":\"churn-xgb\","
            + "\"channels\":{\"train\":\"/data\"},\"hyperparameters\":{},\"sourceUri\":\"builtin:xgboost\"},"
            + "\"registeredBy\":\"alice\",\"registeredAt\":\"2026-11-26T14:30:12Z\","
            + "\"approvalHistory\":[{\"at\":\"2026-11-26T14:30:12Z\",\"status\":\"PendingManualApproval\",\"by\":\"alice\","
            + "\"reason\":\"registered\"},{\"at\":\"2026-11-26T15:00:00Z\",\"status\":\"Approved\",\"by\":\"bob\","
            + "\"reason\":\"AUC above 0.9\"}]}";

    @TempDir
    Path dataDir;
    StubServer server;
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();

    @BeforeEach
    void setUp() throws Exception {
        server = new StubServer();
        Files.writeString(dataDir.resolve("token"), "tok\n");
    }

    @AfterEach
    void tearDown() {
        server.close();
    }

    private int kiln(String... args) {
        String[] all = new String[args.length + 4];
        System.arraycopy(args, 0, all, 0, args.length);
        System.arraycopy(new String[] {"--api-url", server.url(), "--data-dir", dataDir.toString()}, 0, all, args.length, 4);
        return KilnCli.run(new PrintWriter(out, true), new PrintWriter(err, true), all);
    }

    @Test
    void registersApprovesAndDescribesWithHistory() throws Exception {
        server.json("POST /api/v1/model-package-groups/churn/versions", 201, VERSION.replace("Approved", "PendingManualApproval"));
        assertEquals(0, kiln("models", "register", "churn", "--model-uri", "model-dir", "--framework", "torchscript",
                "--metric", "auc=0.91"), err.toString());
        JsonNode sent = KilnClient.MAPPER.readTree(server.requests().get(0).body());
        assertEquals(Path.of("model-dir").toAbsolutePath().toUri().toString(), sent.get("modelUri").asText(),
                "a local path goes as an absolute file: URI");
        assertEquals(0.91, sent.at("/metrics/auc").asDouble());
        assertTrue(out.toString().contains("Registered churn version 2"), out.toString());

        server.json("POST /api/v1/model-package-groups/churn/versions/2/approval", 200, VERSION);
        assertEquals(0, kiln("models", "approve", "churn", "--version", "2", "--reason", "AUC above 0.9"), err.toString());
        JsonNode approval = KilnClient.MAPPER.readTree(server.requests().get(1).body());
        assertEquals("Approved", approval.get("status").asText());
        assertEquals("AUC above 0.9", approval.get("reason").asText());

        server.json("GET /api/v1/model-package-groups/churn/versions/2", 200, VERSION);
        assertEquals(0, kiln("models", "describe", "churn", "--version", "2"), err.toString());
        String text = out.toString();
        for (String s : new String[] {"Training job:    job-1 (churn-xgb)", "Inputs:          x FP32 [-1,4]",
                "Approval history:", "PendingManualApproval  alice", "Approved               bob    AUC above 0.9"}) {
            assertTrue(text.contains(s), s + " in\n" + text);
        }
    }

    @Test
    void usageErrorsAndApiErrors() {
        assertEquals(ExitCodes.USAGE, kiln("models", "register", "churn"));
        assertTrue(err.toString().contains("--job"), err.toString());
        assertEquals(ExitCodes.USAGE, kiln("models", "register", "churn", "--model-uri", "/m"));
        assertTrue(err.toString().contains("--model-uri needs --framework"), err.toString());
        assertTrue(server.requests().isEmpty(), "nothing is sent for a bad command line");
        server.json("GET /api/v1/model-package-groups/nope", 404, "{\"error\":\"no model package group nope\"}");
        assertEquals(ExitCodes.API, kiln("models", "describe", "nope"));
        assertTrue(err.toString().contains("no model package group nope (HTTP 404)"), err.toString());
    }
}
