package io.kiln.worker.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.task.GradientSyncFactory;
import io.kiln.worker.task.GroupRendezvous;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TrainingTask;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Runs a built-in's task through {@link TrainingTask} as the worker does: one rank, or several ranks
 * as threads of this JVM with a stand-in for the coordinator's rendezvous (once every rank has
 * announced its data address, the group is formed) and real TCP collectives between them.
 */
public final class BuiltinHarness {
  private BuiltinHarness() {}

  public static TaskAssignment assignment(String algorithm, Map<String, String> channels, Path jobDir, int rank,
      int world, String... hp) {
    JobSpec.Builder spec = JobSpec.newBuilder().setName("t").setAlgorithm(algorithm).putAllChannels(channels)
        .setResources(Resources.newBuilder().setWorkers(world).setCpusPerWorker(1));
    for (int i = 0; i < hp.length; i += 2) spec.putHyperparameters(hp[i], hp[i + 1]);
    return TaskAssignment.newBuilder().setJobId("job-x").setTaskId("job-x-r" + rank).setRank(rank)
        .setWorldSize(world).setSpec(spec).setJobArtifactsUri(jobDir.toUri().toString()).build();
  }

  /** One rank; the reports in order. */
  public static List<TaskReport> run(String algorithm, Map<String, String> channels, Path jobDir, String... hp) {
    return runRanks(1, algorithm, channels, jobDir, hp).get(0);
  }

  /** {@code world} ranks on threads; each rank's reports. */
  public static List<List<TaskReport>> runRanks(int world, String algorithm, Map<String, String> channels, Path jobDir,
      String... hp) {
    GroupRendezvous[] rendezvous = new GroupRendezvous[world];
    Map<Integer, String> addresses = new TreeMap<>();
    List<List<TaskReport>> reports = new ArrayList<>();
    Thread[] threads = new Thread[world];
    for (int rank = 0; rank < world; rank++) {
      int r = rank;
      List<TaskReport> mine = new CopyOnWriteArrayList<>();
      reports.add(mine);
      TaskAssignment a = assignment(algorithm, channels, jobDir, r, world, hp);
      TaskEvents events = new TaskEvents(a.getJobId(), a.getTaskId(), "w-" + r, rep -> {
        mine.add(rep);
        if (rep.hasRendezvous()) {
          synchronized (addresses) {
            addresses.put(rep.getRendezvous().getRank(), rep.getRendezvous().getDataAddress());
            if (addresses.size() == world) {
              GroupSpec g = GroupSpec.newBuilder().setGeneration(1).addAllDataAddresses(addresses.values())
                  .setBackend("ring").build();
              for (GroupRendezvous gr : rendezvous) gr.formed(g);
            }
          }
        }
      });
      StopSignal stop = new StopSignal();
      rendezvous[r] = new GroupRendezvous(events, stop);
      threads[r] = new Thread(new TrainingTask(a, events, stop, GradientSyncFactory.SINGLE_RANK_ONLY,
          URI.create("file:/nonexistent/"), rendezvous[r]), "rank-" + r);
    }
    for (Thread t : threads) t.start();
    try {
      for (Thread t : threads) t.join(60_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
    return reports;
  }

  public static TaskReport last(List<TaskReport> reports) {
    return reports.get(reports.size() - 1);
  }

  /** The completed report's metrics (fails with the failure reason otherwise). */
  public static Map<String, Double> completed(List<TaskReport> reports) {
    TaskReport end = last(reports);
    assertEquals(TaskReport.KindCase.COMPLETED, end.getKindCase(), end::toString);
    return end.getCompleted().getMetricsMap();
  }

  /** The failure reason (fails if the task did not fail). */
  public static String failed(List<TaskReport> reports) {
    TaskReport end = last(reports);
    assertEquals(TaskReport.KindCase.FAILED, end.getKindCase(), end::toString);
    return end.getFailed().getReason();
  }

  public static void assertContains(String text, String... parts) {
    for (String p : parts) assertTrue(text.contains(p), "'" + p + "' not in: " + text);
  }

  /** Writes CSV rows (label first when {@code y} is not null). */
  public static Path csv(Path file, double[] y, double[][] x) throws Exception {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < x.length; i++) {
      if (y != null) b.append(String.format(Locale.ROOT, "%.10g,", y[i]));
      for (int j = 0; j < x[i].length; j++) {
        b.append(j > 0 ? "," : "").append(String.format(Locale.ROOT, "%.10g", x[i][j]));
      }
      b.append('\n');
    }
    Files.createDirectories(file.getParent());
    Files.writeString(file, b.toString());
    return file;
  }
}
