package io.kiln.it;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.cli.KilnCli;
import io.kiln.cli.local.LocalCluster;
import io.kiln.sdk.JobView;
import io.kiln.sdk.KilnClient;
import io.kiln.sdk.ModelVersionView;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The model registry with real processes: a job trained to completion on a worker JVM, its model
 * registered from the job and approved with the CLI, the coordinator killed with SIGKILL and
 * restarted, and the version still Approved with its whole history.
 */
class RegistryEndToEndTest {
  @TempDir Path dataDir;

  @Test
  void aTrainedModelIsRegisteredApprovedAndSurvivesACoordinatorCrash() throws Exception {
    LocalCluster.Options options = LocalCluster.Options.builder()
        .repoRoot(ClusterEndToEndTest.REPO).dataDir(dataDir).workers(1).apiPort(0).clusterPort(0).journal("h2")
        .readyTimeout(Duration.ofSeconds(150)).killOnExit(true).build();
    try (LocalCluster cluster = LocalCluster.start(options)) {
      KilnClient api = cluster.client();
      JobView job = api.awaitFinal(api.createJob(ClusterEndToEndTest.spec("registry-mlp", ClusterEndToEndTest.SMALL_DATA, 1)).id(),
          ClusterEndToEndTest.JOB_TIMEOUT, Duration.ofMillis(500));
      assertEquals("Completed", job.status(), job.failureReason());

      cli("models", "create-group", "fashion", "--description", "Fashion-MNIST classifiers");
      String registered = cli("models", "register", "fashion", "--job", job.id());
      assertTrue(registered.contains("Registered fashion version 1 (PendingManualApproval)"), registered);
      assertEquals(404, apiStatus(() -> api.latestApprovedModel("fashion")), "nothing approved yet");
      cli("models", "approve", "fashion", "--version", "1", "--reason", "accuracy above 0.6");

      ModelVersionView v = api.getModelVersion("fashion", 1);
      assertEquals(job.modelUri(), v.artifactUri());
      assertEquals("mlp", v.framework());
      assertEquals(job.testAccuracy(), v.metrics().get("test_accuracy"));
      assertEquals(job.id(), v.lineage().path("trainingJobId").asText());
      assertEquals(ClusterEndToEndTest.SMALL_DATA, v.lineage().at("/channels/train").asText());
      assertEquals("1", v.lineage().at("/hyperparameters/epochs").asText());
      assertEquals(784, v.signature().at("/inputs/0/shape/1").asInt(), "signature read from model.json");
      List<ModelVersionView.ApprovalChange> history = v.approvalHistory();

      cluster.killCoordinator(true);
      cluster.restartCoordinator();

      JsonNode after = KilnClient.MAPPER.readTree(cli("models", "describe", "fashion", "--version", "1", "-o", "json"));
      assertEquals("Approved", after.get("status").asText());
      ModelVersionView again = KilnClient.MAPPER.treeToValue(after, ModelVersionView.class);
      assertEquals(history, again.approvalHistory());
      assertEquals(List.of("PendingManualApproval", "Approved"),
          again.approvalHistory().stream().map(ModelVersionView.ApprovalChange::status).toList());
      assertEquals("accuracy above 0.6", again.approvalHistory().get(1).reason());
      assertEquals(1, api.latestApprovedModel("fashion").version());
      String text = cli("models", "describe", "fashion");
      assertTrue(text.contains("Latest approved: version 1") && text.contains("accuracy above 0.6"), text);
      System.out.println(text);
    }
  }

  private static int apiStatus(Runnable call) {
    try {
      call.run();
      return 200;
    } catch (io.kiln.sdk.KilnApiException e) {
      return e.status();
    }
  }

  private String cli(String... args) {
    String[] all = java.util.stream.Stream.concat(java.util.Arrays.stream(args),
        java.util.stream.Stream.of("--data-dir", dataDir.toString())).toArray(String[]::new);
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = KilnCli.run(new PrintWriter(out, true), new PrintWriter(err, true), all);
    assertEquals(0, code, "kiln " + String.join(" ", args) + " failed: " + err);
    return out.toString();
  }
}
