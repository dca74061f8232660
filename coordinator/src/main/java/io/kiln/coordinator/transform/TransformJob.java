package io.kiln.coordinator.transform;

import io.kiln.coordinator.endpoints.EndpointException;
import io.kiln.protocol.proto.TransformJobCompleted;
import io.kiln.protocol.proto.TransformJobConfig;
import io.kiln.protocol.proto.TransformJobCreated;
import io.kiln.protocol.proto.TransformJobEvent;
import io.kiln.protocol.proto.TransformJobFailed;
import io.kiln.protocol.proto.TransformSplitDone;
import io.kiln.protocol.proto.TransformSplitFailed;
import io.kiln.protocol.proto.TransformSplitStarted;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;

/**
 * One batch transform job (event-sourced): starts every split as a {@link SplitRunner} process at
 * once, retries a split that fails (up to maxRetries; a fatal failure, exit 2, fails the job at once),
 * and when all are done assembles the outputs and completes with the rows done and failed. After a
 * coordinator restart, the splits of a job in progress that had not finished run again.
 */
public final class TransformJob extends EventSourcedBehavior<TransformJob.Command, TransformJobEvent, TransformState> {
  public static final String ENTITY_TYPE = "TransformJob";

  public sealed interface Command {}

  public record Create(TransformJobConfig config, String user, ActorRef<StatusReply<TransformState>> replyTo) implements Command {}

  public record Get(ActorRef<TransformState> replyTo) implements Command {}

  private record SplitEnded(int split, int attempt, SplitRunner.Result result) implements Command {}

  private record Assembled(List<String> outputs, String error) implements Command {}

  public record Context(SplitRunner runner, Executor blocking) {}

  public static Behavior<Command> create(String name, Context c) {
    return Behaviors.setup(ctx -> new TransformJob(name, c, ctx));
  }

  private final String name;
  private final Context c;
  private final ActorContext<Command> ctx;

  private TransformJob(String name, Context c, ActorContext<Command> ctx) {
    super(PersistenceId.of(ENTITY_TYPE, name));
    this.name = name;
    this.c = c;
    this.ctx = ctx;
  }

  @Override
  public TransformState emptyState() {
    return new TransformState(name);
  }

  @Override
  public EventHandler<TransformState, TransformJobEvent> eventHandler() {
    return newEventHandlerBuilder().forAnyState().onAnyEvent(TransformState::apply);
  }

  @Override
  public SignalHandler<TransformState> signalHandler() {
    return newSignalHandlerBuilder().onSignal(RecoveryCompleted.instance(), s -> {
      if (s.inProgress()) {
        ctx.getLog().info("transform job {}: resuming after a restart", name);
        if (s.allDone()) assemble(s);
        else s.splits.forEach((i, sp) -> {
          if (!sp.done) ctx.getSelf().tell(new SplitEnded(i, sp.attempts, new SplitRunner.Result(false, 0, 0,
              "the coordinator restarted while the split ran", false)));
        });
      }
    }).build();
  }

  @Override
  public CommandHandler<Command, TransformJobEvent, TransformState> commandHandler() {
    return newCommandHandlerBuilder().forAnyState()
        .onCommand(Create.class, this::onCreate)
        .onCommand(Get.class, (s, g) -> Effect().reply(g.replyTo(), s))
        .onCommand(SplitEnded.class, this::onSplitEnded)
        .onCommand(Assembled.class, this::onAssembled)
        .build();
  }

  private Effect<TransformJobEvent, TransformState> onCreate(TransformState s, Create cmd) {
    if (s.exists) {
      return Effect().reply(cmd.replyTo(), StatusReply.error(EndpointException.conflict("transform job " + name + " already exists")));
    }
    List<TransformJobEvent> events = new java.util.ArrayList<>();
    events.add(event().setCreated(TransformJobCreated.newBuilder().setConfig(cmd.config()).setCreatedBy(cmd.user())).build());
    for (int i = 0; i < cmd.config().getSplits(); i++) {
      events.add(event().setSplitStarted(TransformSplitStarted.newBuilder().setSplit(i).setAttempt(1)).build());
    }
    return Effect().persist(events).thenRun(ns -> {
      for (int i = 0; i < ns.config.getSplits(); i++) run(ns.config, i, 1);
    }).thenReply(cmd.replyTo(), StatusReply::success);
  }

  private void run(TransformJobConfig config, int split, int attempt) {
    ctx.pipeToSelf(CompletableFuture.supplyAsync(() -> c.runner().run(name, config, split, attempt), c.blocking()),
        (r, err) -> new SplitEnded(split, attempt, err == null ? r : new SplitRunner.Result(false, 0, 0, err.toString(), false)));
  }

  private Effect<TransformJobEvent, TransformState> onSplitEnded(TransformState s, SplitEnded e) {
    if (!s.inProgress() || s.splits.get(e.split()).done) return Effect().none();
    SplitRunner.Result r = e.result();
    if (r.ok()) {
      return Effect().persist(event().setSplitDone(TransformSplitDone.newBuilder().setSplit(e.split()).setAttempt(e.attempt())
          .setRowsDone(r.rowsDone()).setRowsFailed(r.rowsFailed()).setWorkerId(r.worker())).build()).thenRun(ns -> {
            if (ns.allDone()) assemble(ns);
          });
    }
    TransformState.Split sp = s.splits.get(e.split());
    TransformJobEvent failed = event().setSplitFailed(TransformSplitFailed.newBuilder().setSplit(e.split()).setAttempt(e.attempt())
        .setReason(r.reason()).setFatal(r.fatal())).build();
    int maxRetries = s.config.getMaxRetries();
    if (r.fatal() || sp.failures + 1 > maxRetries) {
      String why = r.fatal() ? r.reason() : r.reason() + " (failed " + (sp.failures + 1) + " times; maxRetries " + maxRetries + ")";
      return Effect().persist(List.of(failed, event().setFailed(TransformJobFailed.newBuilder().setReason(why)).build()));
    }
    int next = sp.attempts + 1;
    return Effect().persist(List.of(failed, event().setSplitStarted(TransformSplitStarted.newBuilder().setSplit(e.split())
        .setAttempt(next)).build())).thenRun(ns -> run(ns.config, e.split(), next));
  }

  private void assemble(TransformState s) {
    TransformJobConfig config = s.config;
    ctx.pipeToSelf(CompletableFuture.supplyAsync(() -> {
      try {
        return c.runner().assemble(config);
      } catch (java.io.IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    }, c.blocking()), (o, err) -> err == null ? new Assembled(o, null) : new Assembled(List.of(), "cannot assemble the outputs: " + err));
  }

  private Effect<TransformJobEvent, TransformState> onAssembled(TransformState s, Assembled a) {
    if (!s.inProgress()) return Effect().none();
    if (a.error() != null) return Effect().persist(event().setFailed(TransformJobFailed.newBuilder().setReason(a.error())).build());
    return Effect().persist(event().setCompleted(TransformJobCompleted.newBuilder().setRowsDone(s.rowsDone)
        .setRowsFailed(s.rowsFailed).addAllOutputs(a.outputs())).build());
  }

  private TransformJobEvent.Builder event() {
    return TransformJobEvent.newBuilder().setJob(name).setTimestampMs(System.currentTimeMillis());
  }
}
