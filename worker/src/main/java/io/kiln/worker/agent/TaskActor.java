package io.kiln.worker.agent;

import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.task.GradientSyncFactory;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TrainingTask;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.util.function.Supplier;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Owns one running task: starts it on a dedicated thread (training never runs on actor threads),
 * relays stop requests to it, and stops itself when the thread is done. Its parent, the
 * {@link WorkerAgent}, watches it to know which tasks run. When the actor is stopped from outside
 * (the actor system terminates: SIGTERM, or the coordinator was lost) it stops the task's thread.
 */
public final class TaskActor {

  /** Local only: never crosses nodes, so it needs no serializer. */
  public sealed interface Command extends NoSerializationVerificationNeeded permits Stop, Finished, GroupFormed, Regroup {}

  /** The coordinator formed the task's group (distributed tasks): hand it to the waiting rank. */
  public record GroupFormed(io.kiln.protocol.proto.GroupSpec group) implements Command {}

  /** Elastic jobs: leave generation {@code generation} at the next step boundary and rejoin. */
  public record Regroup(int generation, String reason, boolean urgent) implements Command {}

  /** Cancel the task; it reports {@code failed} with reason {@code "stopped: <reason>"}. */
  public record Stop(String reason) implements Command {}

  /** The task's thread ended (after its final report). */
  enum Finished implements Command { INSTANCE }

  private TaskActor() {}

  /**
   * @param shutdownReason why tasks still running when the actor system goes down are stopped (read then)
   */
  public static Behavior<Command> create(TaskAssignment assignment, ActorRef<TaskReport> reportTo, String workerId,
      GradientSyncFactory syncFactory, URI artifactsRoot, Supplier<String> shutdownReason) {
    return Behaviors.setup(ctx -> {
      StopSignal stop = new StopSignal();
      TaskEvents events = new TaskEvents(assignment.getJobId(), assignment.getTaskId(), workerId, reportTo::tell);
      io.kiln.worker.task.GroupRendezvous rendezvous = new io.kiln.worker.task.GroupRendezvous(events, stop);
      TrainingTask task = new TrainingTask(assignment, events, stop, syncFactory, artifactsRoot, rendezvous);
      ActorRef<Command> self = ctx.getSelf();
      Thread thread = new Thread(() -> {
        try {
          task.run();
        } finally {
          self.tell(Finished.INSTANCE);
        }
      }, "kiln-task-" + assignment.getTaskId());
      thread.setDaemon(true);
      thread.setUncaughtExceptionHandler((t, e) -> ctx.getLog().error("task thread {} died", t.getName(), e));
      thread.start();
      return Behaviors.receive(Command.class)
          .onMessage(Stop.class, s -> {
            ctx.getLog().info("stopping task {} of job {}: {}", assignment.getTaskId(), assignment.getJobId(),
                s.reason());
            stop.stop(s.reason());
            return Behaviors.same();
          })
          .onMessage(GroupFormed.class, g -> {
            rendezvous.formed(g.group());
            return Behaviors.same();
          })
          .onMessage(Regroup.class, g -> {
            rendezvous.requestRegroup(g.generation(), g.reason(), g.urgent());
            return Behaviors.same();
          })
          .onMessageEquals(Finished.INSTANCE, Behaviors::stopped)
          .onSignal(PostStop.class, sig -> {
            if (!events.isFinished()) {
              String why = shutdownReason.get();
              ctx.getLog().warn("stopping task {} of job {}: {}", assignment.getTaskId(), assignment.getJobId(), why);
              stop.stop(why);
              events.failed("stopped: " + why);
            }
            return Behaviors.same();
          })
          .build();
    });
  }
}
