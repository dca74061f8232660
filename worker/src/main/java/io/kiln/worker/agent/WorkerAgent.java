package io.kiln.worker.agent;

import io.kiln.protocol.cluster.WorkerCommand;
import io.kiln.protocol.proto.WorkerInfo;
import io.kiln.worker.WorkerSettings;
import io.kiln.worker.hosting.HostedProcesses;
import io.kiln.worker.task.GradientSyncFactory;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;

/**
 * The worker gateway actor: registers under {@link WorkerCommand#SERVICE_KEY} with the receptionist
 * and serves the coordinator's {@link WorkerCommand}s.
 *
 * <ul>
 *   <li>{@code DescribeWorker}: replies {@link WorkerInfo} (id, host, resources, running task ids, start time).
 *   <li>{@code StartTask}: spawns a {@link TaskActor} child that runs the task on its own thread and
 *       reports to {@code reportTo} (started, progress about once a second, log batches, then one
 *       completed or failed). A StartTask for a task id that is already running is ignored.
 *   <li>{@code StopTask}: tells the task to stop; it reports failed with {@code "stopped: <reason>"}.
 * </ul>
 *
 * Running tasks are the live children; the agent watches them, so a finished task disappears from
 * {@code running_task_ids} once its final report has been sent.
 */
public final class WorkerAgent {
  private WorkerAgent() {}

  /** An agent for single-rank tasks. */
  public static Behavior<WorkerCommand> create(WorkerSettings settings) {
    return create(settings, GradientSyncFactory.SINGLE_RANK_ONLY, () -> "the worker agent stopped");
  }

  /**
   * @param syncFactory makes the gradient synchronisation of data-parallel tasks
   * @param shutdownReason why tasks still running are stopped when the agent stops (read at that time)
   */
  public static Behavior<WorkerCommand> create(WorkerSettings settings, GradientSyncFactory syncFactory,
      Supplier<String> shutdownReason) {
    return create(settings, syncFactory, shutdownReason, TaskRegistry.stopWithSystem());
  }

  public static Behavior<WorkerCommand> create(WorkerSettings settings, GradientSyncFactory syncFactory,
      Supplier<String> shutdownReason, TaskRegistry registry) {
    return create(settings, syncFactory, shutdownReason, registry, HostedProcesses.none(settings.workerId()));
  }

  /**
   * @param registry the process's running tasks: the agent adopts those still running from a
   *     previous actor system (the coordinator went away and the worker re-joined)
   * @param hosted the process's hosted processes (endpoint replicas, transform splits), which also
   *     outlive an actor system
   */
  public static Behavior<WorkerCommand> create(WorkerSettings settings, GradientSyncFactory syncFactory,
      Supplier<String> shutdownReason, TaskRegistry registry, HostedProcesses hosted) {
    return Behaviors.setup(ctx -> {
      ctx.getSystem().receptionist().tell(Receptionist.register(WorkerCommand.SERVICE_KEY, ctx.getSelf()));
      ctx.getLog().info("worker agent {} up: {} cpu(s), {} MB, {} gpu(s); registered as {}", settings.workerId(),
          settings.cpus(), settings.memoryMb(), settings.gpus(), WorkerCommand.SERVICE_KEY.id());
      Agent agent = new Agent(ctx, settings, syncFactory, shutdownReason, registry, hosted);
      agent.adoptRunning();
      return agent.behavior();
    });
  }

  private static final class Agent {
    private final ActorContext<WorkerCommand> ctx;
    private final WorkerSettings settings;
    private final GradientSyncFactory syncFactory;
    private final Supplier<String> shutdownReason;
    private final long startedAt = System.currentTimeMillis();
    private final String host;
    private final TaskRegistry registry;
    private final HostedProcesses hosted;
    /** Running tasks by task id, in start order. */
    private final Map<String, Running> tasks = new LinkedHashMap<>();
    private long seq;

    private record Running(String jobId, int cpus, ActorRef<TaskActor.Command> ref) {}

    Agent(ActorContext<WorkerCommand> ctx, WorkerSettings settings, GradientSyncFactory syncFactory,
        Supplier<String> shutdownReason, TaskRegistry registry, HostedProcesses hosted) {
      this.registry = registry;
      this.hosted = hosted;
      this.ctx = ctx;
      this.settings = settings;
      this.syncFactory = syncFactory;
      this.shutdownReason = shutdownReason;
      String h = ctx.getSystem().address().getHost().orElse("");
      this.host = h.isEmpty() ? WorkerSettings.hostname() : h;
    }

    /** Tasks that outlived the previous actor system run on under this agent. */
    void adoptRunning() {
      for (TaskRegistry.LiveTask t : registry.running()) {
        var a = t.assignment();
        ActorRef<TaskActor.Command> ref = ctx.spawn(TaskActor.adopt(t, shutdownReason, registry),
            "task-" + (++seq) + "-" + sanitize(a.getTaskId()));
        ctx.watch(ref);
        int cpus = a.getSpec().hasResources() && a.getSpec().getResources().getCpusPerWorker() > 0
            ? a.getSpec().getResources().getCpusPerWorker() : 1;
        tasks.put(a.getTaskId(), new Running(a.getJobId(), cpus, ref));
      }
    }

    Behavior<WorkerCommand> behavior() {
      return Behaviors.receive(WorkerCommand.class)
          .onMessage(WorkerCommand.DescribeWorker.class, this::onDescribe)
          .onMessage(WorkerCommand.StartTask.class, this::onStart)
          .onMessage(WorkerCommand.StopTask.class, this::onStop)
          .onMessage(WorkerCommand.FormGroup.class, this::onFormGroup)
          .onMessage(WorkerCommand.RegroupTask.class, this::onRegroup)
          .onMessage(WorkerCommand.AttachTask.class, this::onAttach)
          .onMessage(WorkerCommand.StartHosted.class, this::onStartHosted)
          .onMessage(WorkerCommand.StopHosted.class, this::onStopHosted)
          .onSignal(Terminated.class, this::onTerminated)
          .build();
    }

    private Behavior<WorkerCommand> onDescribe(WorkerCommand.DescribeWorker d) {
      d.replyTo().tell(WorkerInfo.newBuilder()
          .setWorkerId(settings.workerId())
          .setHost(host)
          .setResources(settings.resources())
          .addAllRunningTaskIds(tasks.keySet())
          .addAllHostedProcessIds(hosted.running())
          .setStartedAtMs(startedAt)
          .build());
      return Behaviors.same();
    }

    private Behavior<WorkerCommand> onStart(WorkerCommand.StartTask s) {
      var a = s.assignment();
      String taskId = a.getTaskId();
      if (taskId.isEmpty()) {
        ctx.getLog().warn("ignoring StartTask without a task id (job {})", a.getJobId());
        return Behaviors.same();
      }
      if (tasks.containsKey(taskId)) {
        ctx.getLog().info("task {} of job {} is already running here; ignoring the repeated StartTask", taskId,
            a.getJobId());
        return Behaviors.same();
      }
      int cpus = a.getSpec().hasResources() && a.getSpec().getResources().getCpusPerWorker() > 0
          ? a.getSpec().getResources().getCpusPerWorker() : 1;
      int used = tasks.values().stream().mapToInt(Running::cpus).sum();
      if (used + cpus > settings.cpus()) {
        ctx.getLog().warn("task {} needs {} cpu(s) but {} of {} are in use: running it anyway (oversubscribed)", taskId,
            cpus, used, settings.cpus());
      }
      ActorRef<TaskActor.Command> ref = ctx.spawn(
          TaskActor.create(a, s.reportTo(), settings.workerId(), syncFactory, settings.artifactsRoot(), shutdownReason,
              registry),
          "task-" + (++seq) + "-" + sanitize(taskId));
      ctx.watch(ref);
      tasks.put(taskId, new Running(a.getJobId(), cpus, ref));
      ctx.getLog().info("started task {} (rank {} of {}) of job {}", taskId, a.getRank(), Math.max(1, a.getWorldSize()),
          a.getJobId());
      return Behaviors.same();
    }

    private Behavior<WorkerCommand> onStop(WorkerCommand.StopTask s) {
      Running r = tasks.get(s.taskId());
      if (r == null || (!s.jobId().isEmpty() && !s.jobId().equals(r.jobId()))) {
        ctx.getLog().info("StopTask for task {} of job {}: not running here", s.taskId(), s.jobId());
        return Behaviors.same();
      }
      r.ref().tell(new TaskActor.Stop(s.reason() == null || s.reason().isBlank() ? "requested" : s.reason()));
      return Behaviors.same();
    }

    private Behavior<WorkerCommand> onFormGroup(WorkerCommand.FormGroup g) {
      Running r = tasks.get(g.taskId());
      if (r == null) {
        ctx.getLog().info("FormGroup for task {} of job {}: not running here", g.taskId(), g.jobId());
      } else {
        r.ref().tell(new TaskActor.GroupFormed(g.group()));
      }
      return Behaviors.same();
    }

    private Behavior<WorkerCommand> onAttach(WorkerCommand.AttachTask t) {
      Running r = tasks.get(t.taskId());
      if (r == null) {
        ctx.getLog().info("AttachTask for task {} of job {}: not running here", t.taskId(), t.jobId());
      } else {
        r.ref().tell(new TaskActor.Attach(t.reportTo()));
      }
      return Behaviors.same();
    }

    private Behavior<WorkerCommand> onRegroup(WorkerCommand.RegroupTask g) {
      Running r = tasks.get(g.taskId());
      if (r != null) r.ref().tell(new TaskActor.Regroup(g.generation(), g.reason(), g.urgent()));
      return Behaviors.same();
    }

    /** The process starts and is watched on its own threads; the answer goes straight to the asker. */
    private Behavior<WorkerCommand> onStartHosted(WorkerCommand.StartHosted h) {
      ctx.getLog().info("hosting {} ({})", h.spec().getId(), h.spec().getMainClass());
      hosted.start(h.spec()).thenAccept(h.replyTo()::tell);
      return Behaviors.same();
    }

    private Behavior<WorkerCommand> onStopHosted(WorkerCommand.StopHosted h) {
      Thread t = new Thread(() -> hosted.stop(h.id(), h.reason()), "kiln-hosted-stop");
      t.setDaemon(true);
      t.start();
      return Behaviors.same();
    }

    private Behavior<WorkerCommand> onTerminated(Terminated t) {
      tasks.values().removeIf(r -> r.ref().equals(t.getRef()));
      return Behaviors.same();
    }

    private static String sanitize(String id) {
      StringBuilder b = new StringBuilder();
      for (char c : id.toCharArray()) {
        b.append(Character.isLetterOrDigit(c) || c == '-' || c == '_' || c == '.' ? c : '_');
        if (b.length() >= 64) break;
      }
      return b.toString();
    }
  }
}
