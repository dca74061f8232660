package io.kiln.worker.agent;

import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.worker.task.GradientSyncFactory;
import io.kiln.worker.task.GroupRendezvous;
import io.kiln.worker.task.TaskEvents;
import io.kiln.worker.task.TrainingTask;
import io.kiln.worker.training.StopSignal;
import java.net.URI;
import java.util.function.Supplier;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Owns one running task: starts it on a dedicated thread (training never runs on actor threads),
 * relays the coordinator's commands to it, and stops itself when the thread is done. Its parent,
 * the {@link WorkerAgent}, watches it to know which tasks run.
 *
 * <p>When the actor system goes down because the coordinator went away, the task keeps running
 * (see {@link TaskRegistry}): its reports are held, and the next actor system's agent adopts it
 * ({@link #adopt}) until the restarted coordinator re-attaches it. When the worker shuts down, the
 * task is stopped.
 */
public final class TaskActor {

  /** Local only: never crosses nodes, so it needs no serializer. */
  public sealed interface Command extends NoSerializationVerificationNeeded
      permits Stop, Finished, GroupFormed, Regroup, Attach {}

  /** The coordinator formed the task's group (distributed tasks): hand it to the waiting rank. */
  public record GroupFormed(io.kiln.protocol.proto.GroupSpec group) implements Command {}

  /** Elastic jobs: leave generation {@code generation} (at once when urgent) and rejoin. */
  public record Regroup(int generation, String reason, boolean urgent) implements Command {}

  /** A restarted coordinator adopted the task: send its reports (held ones first) to {@code reportTo}. */
  public record Attach(ActorRef<TaskReport> reportTo) implements Command {}

  /** Cancel the task; it reports {@code failed} with reason {@code "stopped: <reason>"}. */
  public record Stop(String reason) implements Command {}

  /** The task's thread ended (after its final report). */
  enum Finished implements Command { INSTANCE }

  private TaskActor() {}

  /** Starts a task whose reports go to {@code reportTo}; it stops with the actor system. */
  public static Behavior<Command> create(TaskAssignment assignment, ActorRef<TaskReport> reportTo, String workerId,
      GradientSyncFactory syncFactory, URI artifactsRoot, Supplier<String> shutdownReason) {
    return create(assignment, reportTo, workerId, syncFactory, artifactsRoot, shutdownReason, TaskRegistry.stopWithSystem());
  }

  /**
   * @param shutdownReason why a task still running when the actor system goes down is stopped (read then)
   * @param registry where the task is known across actor systems (it decides whether tasks outlive one)
   */
  public static Behavior<Command> create(TaskAssignment assignment, ActorRef<TaskReport> reportTo, String workerId,
      GradientSyncFactory syncFactory, URI artifactsRoot, Supplier<String> shutdownReason, TaskRegistry registry) {
    return Behaviors.setup(ctx -> {
      StopSignal stop = new StopSignal();
      TaskEvents events = new TaskEvents(assignment.getJobId(), assignment.getTaskId(), workerId, reportTo::tell);
      GroupRendezvous rendezvous = new GroupRendezvous(events, stop);
      TrainingTask task = new TrainingTask(assignment, events, stop, syncFactory, artifactsRoot, rendezvous);
      TaskRegistry.LiveTask live = registry.register(assignment, events, stop, rendezvous);
      Thread thread = new Thread(() -> {
        try {
          task.run();
        } finally {
          // Stays known for a grace period (or, ended while the coordinator is away, until it is
          // re-attached) so that a restarted coordinator gets its final report: see TaskRegistry.
          live.finished();
          registry.forgetOldFinished();
        }
      }, "kiln-task-" + assignment.getTaskId());
      thread.setDaemon(true);
      thread.setUncaughtExceptionHandler((t, e) -> ctx.getLog().error("task thread {} died", t.getName(), e));
      return running(ctx, live, shutdownReason, registry, thread);
    });
  }

  /** Takes over a task that kept running from the previous actor system (its reports are held). */
  public static Behavior<Command> adopt(TaskRegistry.LiveTask live, Supplier<String> shutdownReason,
      TaskRegistry registry) {
    return Behaviors.setup(ctx -> {
      ctx.getLog().info("adopted task {} of job {}: it kept running while the worker re-joined; its reports wait for "
          + "the coordinator", live.assignment.getTaskId(), live.assignment.getJobId());
      return running(ctx, live, shutdownReason, registry, null);
    });
  }

  private static Behavior<Command> running(ActorContext<Command> ctx, TaskRegistry.LiveTask live,
      Supplier<String> shutdownReason, TaskRegistry registry, Thread toStart) {
    ActorRef<Command> self = ctx.getSelf();
    live.ownedBy(() -> self.tell(Finished.INSTANCE));
    if (toStart != null) toStart.start();
    TaskAssignment a = live.assignment;
    return Behaviors.receive(Command.class)
        .onMessage(Stop.class, s -> {
          ctx.getLog().info("stopping task {} of job {}: {}", a.getTaskId(), a.getJobId(), s.reason());
          live.stop.stop(s.reason());
          if (!live.done) return Behaviors.same();
          registry.remove(a.getTaskId()); // ended while detached and no job wants its report any more
          return Behaviors.stopped();
        })
        .onMessage(GroupFormed.class, g -> {
          live.rendezvous.formed(g.group());
          return Behaviors.same();
        })
        .onMessage(Regroup.class, g -> {
          live.rendezvous.requestRegroup(g.generation(), g.reason(), g.urgent());
          return Behaviors.same();
        })
        .onMessage(Attach.class, at -> {
          ctx.getLog().info("task {} of job {} re-attached to its job", a.getTaskId(), a.getJobId());
          live.events.attach(at.reportTo()::tell);
          if (!live.done) return Behaviors.same();
          registry.remove(a.getTaskId()); // its held final report is on its way
          return Behaviors.stopped();
        })
        .onMessageEquals(Finished.INSTANCE, () -> {
          if (!live.events.isDetached()) return Behaviors.stopped();
          ctx.getLog().info("task {} of job {} ended while the coordinator was away; its final report waits for it",
              a.getTaskId(), a.getJobId());
          return Behaviors.same();
        })
        .onSignal(PostStop.class, sig -> {
          if (!live.events.isFinished() && !live.done) {
            if (registry.keepOnRestart()) {
              ctx.getLog().warn("task {} of job {} keeps running while the worker re-joins the cluster", a.getTaskId(),
                  a.getJobId());
              live.events.detach();
              live.ownedBy(() -> { });
            } else {
              String why = shutdownReason.get();
              ctx.getLog().warn("stopping task {} of job {}: {}", a.getTaskId(), a.getJobId(), why);
              live.stop.stop(why);
              live.events.failed("stopped: " + why);
            }
          }
          return Behaviors.same();
        })
        .build();
  }
}
