package io.kiln.worker.javamodel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.TestData;
import io.kiln.worker.task.GradientSyncFactory;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TrainingTask;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Algorithm {@code java}: a model jar built at test time, loaded in its own class loader, trained by Kiln's loop. */
class JarModelsTest {
  @TempDir Path tmp;

  List<TaskReport> train(Path jobDir, String... hp) {
    JobSpec.Builder spec = JobSpec.newBuilder().setName("j").setAlgorithm("java")
        .putChannels("train", "file:" + TestData.fashionSmall())
        .setResources(Resources.newBuilder().setWorkers(1).setCpusPerWorker(1));
    for (int i = 0; i < hp.length; i += 2) spec.putHyperparameters(hp[i], hp[i + 1]);
    TaskAssignment a = TaskAssignment.newBuilder().setJobId("job-1").setTaskId("job-1-r0").setRank(0).setWorldSize(1)
        .setSpec(spec).setJobArtifactsUri(jobDir.toUri().toString()).build();
    List<TaskReport> reports = new CopyOnWriteArrayList<>();
    new TrainingTask(a, new TaskEvents("job-1", "job-1-r0", "w", reports::add), new StopSignal(),
        GradientSyncFactory.SINGLE_RANK_ONLY, URI.create("file:/nonexistent/")).run();
    return reports;
  }

  static TaskReport last(List<TaskReport> r) {
    return r.get(r.size() - 1);
  }

  @Test
  void aUsersModelJarIsTrainedByKilnsLoopAndItsJarTravelsWithTheModel() throws Exception {
    Path jar = TestJars.build(tmp.resolve("build"), System.getProperty("java.class.path"), "com.example.WideNet",
        TestJars.wideNet());
    Path jobDir = tmp.resolve("jobs/job-1");
    List<TaskReport> reports = train(jobDir, "kiln_jar", jar.toUri().toString(), "kiln_model_class",
        "com.example.WideNet", "epochs", "2", "width", "96");
    TaskReport done = last(reports);
    assertEquals(TaskReport.KindCase.COMPLETED, done.getKindCase(), reports.toString());
    assertTrue(done.getCompleted().getMetricsMap().get("test_accuracy") > 0.6, done.getCompleted().toString());
    Path model = jobDir.resolve("model");
    JsonObject json = JsonParser.parseString(Files.readString(model.resolve("model.json"))).getAsJsonObject();
    assertEquals("java:com.example.WideNet", json.get("algorithm").getAsString());
    assertEquals("96", json.getAsJsonObject("hyperparameters").get("width").getAsString());
    assertEquals(Files.size(jar), Files.size(model.resolve("model.jar")));
    assertTrue(Files.exists(model.resolve("model-0000.params")));
  }

  @Test
  void aBadJarOrClassFailsTheTaskNamingTheProblem() throws Exception {
    Path jar = TestJars.build(tmp.resolve("build"), System.getProperty("java.class.path"), "com.example.WideNet",
        TestJars.wideNet(), "com.example.NotAModel", "package com.example; public class NotAModel {}");
    String j = jar.toString();
    assertEquals("cannot load the model jar: model class com.example.Nope is not in " + j,
        last(train(tmp.resolve("a"), "kiln_jar", j, "kiln_model_class", "com.example.Nope")).getFailed().getReason());
    assertEquals("cannot load the model jar: model class com.example.NotAModel does not implement io.kiln.api.KilnModel "
        + "(depend on kiln-model-api with scope provided)",
        last(train(tmp.resolve("b"), "kiln_jar", j, "kiln_model_class", "com.example.NotAModel")).getFailed().getReason());
    assertEquals("cannot load the model jar: model jar /nope.jar does not exist on this worker",
        last(train(tmp.resolve("c"), "kiln_jar", "/nope.jar", "kiln_model_class", "x.Y")).getFailed().getReason());
    assertTrue(last(train(tmp.resolve("d"), "kiln_model_class", "x.Y")).getFailed().getReason()
        .contains("hyperparameters.kiln_jar is required"));
    // the model's own hyperparameter check reaches the job's reason
    String bad = last(train(tmp.resolve("e"), "kiln_jar", j, "kiln_model_class", "com.example.WideNet", "width", "wide"))
        .getFailed().getReason();
    assertTrue(bad.contains("wide"), bad);
  }

  @Test
  void theJarComesFirstExceptForTheSharedPackages() throws Exception {
    // a class that also exists on the worker's class path (not shared): the jar's copy wins
    Path jar = TestJars.build(tmp.resolve("build"), "", "io.kiln.worker.training.Hyperparameters",
        "package io.kiln.worker.training; public class Hyperparameters { public static String origin() { return \"jar\"; } }");
    try (ChildFirstClassLoader l = new ChildFirstClassLoader(jar.toUri().toURL(), getClass().getClassLoader())) {
      Class<?> mine = l.loadClass("io.kiln.worker.training.Hyperparameters");
      assertSame(l, mine.getClassLoader());
      assertEquals("jar", mine.getMethod("origin").invoke(null));
      assertNotSame(io.kiln.worker.training.Hyperparameters.class, mine);
      // DJL and the model API are the worker's, so the block the jar builds is the type the loop trains
      assertSame(ai.djl.nn.Block.class, l.loadClass("ai.djl.nn.Block"));
      assertSame(io.kiln.api.KilnModel.class, l.loadClass("io.kiln.api.KilnModel"));
    }
  }
}
