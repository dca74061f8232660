package io.kiln.coordinator.registry;

import io.kiln.protocol.proto.ModelApprovalChanged;
import io.kiln.protocol.proto.ModelGroupCreated;
import io.kiln.protocol.proto.ModelPackage;
import io.kiln.protocol.proto.ModelVersionRegistered;
import io.kiln.protocol.proto.RegistryEvent;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.javadsl.CommandHandlerWithReply;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehaviorWithEnforcedReplies;
import org.apache.pekko.persistence.typed.javadsl.ReplyEffect;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;

/**
 * One model package group (event-sourced): its versions, numbered here so that two registrations
 * at once never get the same number, and each version's approval history. Checks every request
 * against the state; errors are {@link RegistryException}s in the reply.
 */
public final class ModelPackageGroup
    extends EventSourcedBehaviorWithEnforcedReplies<ModelPackageGroup.Command, RegistryEvent, GroupState> {
  public static final String ENTITY_TYPE = "ModelPackageGroup";

  public sealed interface Command {}

  public record Create(String description, String user, ActorRef<StatusReply<GroupState>> replyTo) implements Command {}

  public record Register(ModelPackage pkg, String user, ActorRef<StatusReply<ModelVersion>> replyTo) implements Command {}

  public record SetApproval(int version, ApprovalStatus status, String reason, String user,
                            ActorRef<StatusReply<ModelVersion>> replyTo) implements Command {}

  public record Get(ActorRef<GroupState> replyTo) implements Command {}

  /** Tells the registry manager of every change and of the end of recovery. */
  public record Listener(Consumer<GroupState> onChange, Consumer<GroupState> onRecovered) {}

  public static Behavior<Command> create(String group, Listener listener) {
    return Behaviors.setup(ctx -> new ModelPackageGroup(group, listener));
  }

  public static PersistenceId persistenceId(String group) {
    return PersistenceId.of(ENTITY_TYPE, group);
  }

  private final String group;
  private final Listener listener;

  private ModelPackageGroup(String group, Listener listener) {
    super(persistenceId(group));
    this.group = group;
    this.listener = listener;
  }

  @Override
  public GroupState emptyState() {
    return GroupState.empty(group);
  }

  @Override
  public EventHandler<GroupState, RegistryEvent> eventHandler() {
    return newEventHandlerBuilder().forAnyState().onAnyEvent(GroupState::apply);
  }

  @Override
  public SignalHandler<GroupState> signalHandler() {
    return newSignalHandlerBuilder().onSignal(RecoveryCompleted.instance(), listener.onRecovered()::accept).build();
  }

  @Override
  public CommandHandlerWithReply<Command, RegistryEvent, GroupState> commandHandler() {
    return newCommandHandlerWithReplyBuilder().forAnyState()
        .onCommand(Create.class, this::onCreate)
        .onCommand(Register.class, this::onRegister)
        .onCommand(SetApproval.class, this::onSetApproval)
        .onCommand(Get.class, (s, c) -> Effect().reply(c.replyTo(), s))
        .build();
  }

  private ReplyEffect<RegistryEvent, GroupState> onCreate(GroupState s, Create c) {
    if (s.exists()) {
      return Effect().reply(c.replyTo(), StatusReply.error(
          new RegistryException(RegistryException.Kind.CONFLICT, "model package group " + group + " already exists")));
    }
    RegistryEvent e = event().setGroupCreated(ModelGroupCreated.newBuilder()
        .setDescription(c.description()).setCreatedBy(c.user())).build();
    return Effect().persist(e).thenRun(listener.onChange()::accept).thenReply(c.replyTo(), StatusReply::success);
  }

  private ReplyEffect<RegistryEvent, GroupState> onRegister(GroupState s, Register c) {
    if (!s.exists()) return Effect().reply(c.replyTo(), StatusReply.error(noGroup()));
    int n = s.nextVersion();
    RegistryEvent e = event().setVersionRegistered(ModelVersionRegistered.newBuilder().setVersion(n).setPackage(c.pkg())
        .setRegisteredBy(c.user()).setStatus(ApprovalStatus.PendingManualApproval.proto())
        .setReason("registered")).build();
    return Effect().persist(e).thenRun(listener.onChange()::accept)
        .thenReply(c.replyTo(), ns -> StatusReply.success(ns.version(n).orElseThrow()));
  }

  private ReplyEffect<RegistryEvent, GroupState> onSetApproval(GroupState s, SetApproval c) {
    if (!s.exists()) return Effect().reply(c.replyTo(), StatusReply.error(noGroup()));
    var found = s.version(c.version());
    if (found.isEmpty()) {
      return Effect().reply(c.replyTo(), StatusReply.error(RegistryException.notFound("model package group " + group
          + " has no version " + c.version() + (s.versions().isEmpty() ? " (it has no versions)"
          : " (versions 1.." + s.versions().size() + ")"))));
    }
    ModelVersion v = found.get();
    String bad = Approvals.refusal(v, c.status());
    if (bad != null) return Effect().reply(c.replyTo(), StatusReply.error(RegistryException.invalid(bad)));
    RegistryEvent e = event().setApprovalChanged(ModelApprovalChanged.newBuilder().setVersion(v.version())
        .setStatus(c.status().proto()).setChangedBy(c.user()).setReason(c.reason() == null ? "" : c.reason())).build();
    return Effect().persist(e).thenRun(listener.onChange()::accept)
        .thenReply(c.replyTo(), ns -> StatusReply.success(ns.version(v.version()).orElseThrow()));
  }

  private RegistryException noGroup() {
    return RegistryException.notFound("no model package group " + group);
  }

  private RegistryEvent.Builder event() {
    return RegistryEvent.newBuilder().setGroup(group).setTimestampMs(System.currentTimeMillis());
  }
}
