package io.kiln.worker.task;

import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.util.Map;

/**
 * A way to run a task other than Kiln's DJL training loop: a built-in algorithm (XGBoost, ...) or
 * a user's script. Runners are found by the job's {@code algorithm} name through
 * {@link java.util.ServiceLoader} ({@code META-INF/services/io.kiln.worker.task.TaskRunner}), so
 * adding one touches neither the task nor the agent.
 *
 * <p>{@link TrainingTask} reports {@code started} before and {@code completed} (with the
 * {@link Outcome}) or {@code failed} (with the exception's message, prefixed by the stage) after.
 */
public interface TaskRunner {

  /** The {@code algorithm} name of the job spec this runner serves. */
  String name();

  /** Runs the task to its end on the calling thread; throws to fail it (check {@code ctx.stop()} often). */
  Outcome run(Context ctx) throws Exception;

  /** What a finished task reports: where its model is and its metrics (rank 0 carries the model). */
  record Outcome(String modelUri, Map<String, Double> metrics) {}

  /** Everything a runner gets: the assignment, reporting, stop requests, peers, and where to write. */
  record Context(TaskAssignment assignment, TaskEvents events, StopSignal stop, GroupRendezvous rendezvous, URI jobUri,
                 URI modelUri) {}
}
