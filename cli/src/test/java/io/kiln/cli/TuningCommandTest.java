package io.kiln.cli;

import static org.junit.jupiter.api.Assertions.*;

import io.kiln.testing.StubServer;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code kiln tune} and {@code kiln tuning ...} against a stand-in API on a real socket. */
class TuningCommandTest {
    static final String VIEW = """
            {"id":"tune-1","name":"small","status":"%s","strategy":"random","seed":7,
             "objective":{"metric":"test_accuracy","type":"Maximize"},"maxTrials":3,"maxParallelTrials":2,
             "submittedBy":"local-admin","submittedAt":"2026-11-26T17:00:00Z","endedAt":null,"endReason":"%s",
             "trialCounts":{"total":3,"pending":0,"running":0,"completed":2,"failed":0,"stopped":0,"earlyStopped":1},
             "warmStartTrials":0,
             "bestTrial":{"rank":1,"trialId":"t002","objective":0.81},
             "spec":{"parameters":[{"name":"learning_rate"},{"name":"hidden"}]},
             "leaderboard":[
               {"rank":1,"trialId":"t002","jobId":"job-2","status":"Completed","objective":0.81,
                "hyperparameters":{"learning_rate":"0.05","hidden":"64"},"parentTrialId":"","reason":""},
               {"rank":2,"trialId":"t001","jobId":"job-1","status":"Completed","objective":0.7,
                "hyperparameters":{"learning_rate":"0.2","hidden":"32"},"parentTrialId":"","reason":""},
               {"rank":null,"trialId":"t003","jobId":"job-3","status":"EarlyStopped","objective":null,
                "hyperparameters":{"learning_rate":"0.001","hidden":"32"},"parentTrialId":"",
                "reason":"early-stopped by the median rule after 1 epoch(s)"}]}""";

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
        all[args.length] = "--api-url";
        all[args.length + 1] = server.url();
        all[args.length + 2] = "--data-dir";
        all[args.length + 3] = dataDir.toString();
        return KilnCli.run(new PrintWriter(out, true), new PrintWriter(err, true), all);
    }

    @Test
    void tuneSubmitsTheFileAndPrintsTheLeaderboard() throws Exception {
        server.json("POST /api/v1/tuning-jobs", 201, VIEW.formatted("Running", ""));
        server.json("GET /api/v1/tuning-jobs/tune-1", 200, VIEW.formatted("Completed", "all 3 trials finished"));
        Path file = dataDir.resolve("tuning.yaml");
        Files.writeString(file, "name: small\nstrategy: random\nmax_trials: 3\ntraining_job: {algorithm: mlp, channels: {train: /d}}\n");
        assertEquals(0, kiln("tune", "-f", file.toString(), "--poll", "1"), err.toString());
        String o = out.toString();
        assertTrue(o.contains("Tuning job tune-1 submitted (random, up to 3 trials, 2 in parallel)"), o);
        assertTrue(o.contains("Completed: 2/3 done, 0 running, 1 early-stopped; best 0.8100 (t002)"), o);
        assertTrue(o.matches("(?s).*1\\s+t002\\s+Completed\\s+0\\.8100\\s+0\\.05\\s+64\\s+job-2.*"), o);
        assertTrue(o.contains("early-stopped by the median rule"), o);
        String body = server.requests().get(0).body();
        assertTrue(body.contains("\"maxTrials\":3") && body.contains("\"trainingJob\""), body);
    }

    @Test
    void describeListAndStop() {
        server.json("GET /api/v1/tuning-jobs/tune-1", 200, VIEW.formatted("Completed", "all 3 trials finished"));
        server.json("GET /api/v1/tuning-jobs", 200, "{\"tuningJobs\":[" + VIEW.formatted("Running", "") + "]}");
        server.json("POST /api/v1/tuning-jobs/tune-1/stop", 202, VIEW.formatted("Stopping", ""));
        assertEquals(0, kiln("tuning", "describe", "tune-1"));
        assertTrue(out.toString().contains("Objective:  Maximize test_accuracy"), out.toString());
        assertTrue(out.toString().contains("RANK  TRIAL  STATUS"), out.toString());
        assertEquals(0, kiln("tuning", "list"));
        assertTrue(out.toString().contains("0.8100 (t002)"), out.toString());
        assertEquals(0, kiln("tuning", "stop", "tune-1"));
        assertTrue(out.toString().contains("Tuning job tune-1 Stopping"), out.toString());
    }

    @Test
    void anUnknownTuningJobIsAnApiError() {
        server.json("GET /api/v1/tuning-jobs/nope", 404, "{\"error\":\"no tuning job nope\"}");
        assertEquals(ExitCodes.API, kiln("tuning", "describe", "nope"));
        assertTrue(err.toString().contains("no tuning job nope (HTTP 404)"), err.toString());
    }
}
