package io.kiln.coordinator.registry;

import io.kiln.protocol.proto.ModelPackage;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletionStage;
import java.util.function.Supplier;
import java.util.regex.Pattern;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.StashBuffer;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;

/**
 * The model registry (a cluster singleton, like the job manager): one {@link ModelPackageGroup}
 * entity per group, every group recovered from the journal when it starts, and a summary of each
 * for listing. Requests wait (stashed) until every group is recovered, so that a group is never
 * reported missing only because it has not been replayed yet.
 */
public final class RegistryManager {

  public sealed interface Command {}

  public record CreateGroup(String name, String description, String user, ActorRef<StatusReply<GroupState>> replyTo)
      implements Command {}

  public record ListGroups(ActorRef<List<GroupState>> replyTo) implements Command {}

  public record GetGroup(String name, ActorRef<StatusReply<GroupState>> replyTo) implements Command {}

  public record Register(String group, ModelPackage pkg, String user, ActorRef<StatusReply<ModelVersion>> replyTo)
      implements Command {}

  public record SetApproval(String group, int version, ApprovalStatus status, String reason, String user,
                            ActorRef<StatusReply<ModelVersion>> replyTo) implements Command {}

  /** The highest-numbered Approved version of a group; NOT_FOUND when there is none. */
  public record GetLatestApproved(String group, ActorRef<StatusReply<ModelVersion>> replyTo) implements Command {}

  public record IsReady(ActorRef<Boolean> replyTo) implements Command {}

  private record Changed(GroupState state) implements Command {}

  private record Recovered(GroupState state) implements Command {}

  private record IdsLoaded(List<String> groups) implements Command {}

  private record IdsFailed(String reason) implements Command {}

  /** Where the manager finds persisted ids (the JDBC read journal in production). */
  public interface IdSource extends Supplier<Source<String, NotUsed>> {}

  /** SageMaker's rule for model package group names. */
  static final Pattern NAME = Pattern.compile("[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}");

  public static Behavior<Command> create(IdSource ids) {
    return Behaviors.withStash(10_000, stash -> Behaviors.setup(ctx -> new RegistryManager(ctx, stash).loading(ids)));
  }

  private final ActorContext<Command> ctx;
  private final StashBuffer<Command> stash;
  private final Map<String, ActorRef<ModelPackageGroup.Command>> groups = new HashMap<>();
  private final Map<String, GroupState> summaries = new HashMap<>();
  private final Set<String> recovering = new HashSet<>();
  private final ModelPackageGroup.Listener listener;

  private RegistryManager(ActorContext<Command> ctx, StashBuffer<Command> stash) {
    this.ctx = ctx;
    this.stash = stash;
    ActorRef<Command> self = ctx.getSelf();
    this.listener = new ModelPackageGroup.Listener(s -> self.tell(new Changed(s)), s -> self.tell(new Recovered(s)));
  }

  private Behavior<Command> loading(IdSource ids) {
    String prefix = ModelPackageGroup.ENTITY_TYPE + "|";
    CompletionStage<List<String>> loaded = ids.get()
        .filter(pid -> pid.startsWith(prefix))
        .map(pid -> pid.substring(prefix.length()))
        .runWith(Sink.seq(), ctx.getSystem());
    ctx.pipeToSelf(loaded, (list, err) -> list != null ? new IdsLoaded(list) : new IdsFailed(String.valueOf(err)));
    return Behaviors.receive(Command.class)
        .onMessage(IdsLoaded.class, m -> {
          for (String g : m.groups()) {
            recovering.add(g);
            spawn(g);
          }
          ctx.getLog().info("recovering {} model package group(s) from the journal", recovering.size());
          return recovering.isEmpty() ? stash.unstashAll(active()) : Behaviors.same();
        })
        .onMessage(IdsFailed.class, m -> {
          throw new IllegalStateException("cannot list model package groups in the journal: " + m.reason());
        })
        .onMessage(Recovered.class, m -> {
          if (m.state().exists()) summaries.put(m.state().name(), m.state());
          recovering.remove(m.state().name());
          return recovering.isEmpty() ? stash.unstashAll(active()) : Behaviors.same();
        })
        .onMessage(IsReady.class, m -> {
          m.replyTo().tell(false);
          return Behaviors.same();
        })
        .onAnyMessage(m -> {
          stash.stash(m);
          return Behaviors.same();
        })
        .build();
  }

  private Behavior<Command> active() {
    return Behaviors.receive(Command.class)
        .onMessage(IsReady.class, m -> {
          m.replyTo().tell(true);
          return Behaviors.same();
        })
        .onMessage(CreateGroup.class, this::onCreate)
        .onMessage(ListGroups.class, m -> {
          List<GroupState> all = new ArrayList<>(summaries.values());
          all.sort(Comparator.comparing(GroupState::name));
          m.replyTo().tell(all);
          return Behaviors.same();
        })
        .onMessage(GetGroup.class, m -> {
          GroupState s = summaries.get(m.name());
          m.replyTo().tell(s == null ? StatusReply.error(noGroup(m.name())) : StatusReply.success(s));
          return Behaviors.same();
        })
        .onMessage(GetLatestApproved.class, m -> {
          GroupState s = summaries.get(m.group());
          if (s == null) m.replyTo().tell(StatusReply.error(noGroup(m.group())));
          else m.replyTo().tell(s.latestApproved().map(StatusReply::success).orElseGet(() -> StatusReply.error(
              RegistryException.notFound("model package group " + m.group() + " has no Approved version"
                  + (s.versions().isEmpty() ? " (it has no versions)" : " (" + s.versions().size()
                  + " version(s), none Approved)")))));
          return Behaviors.same();
        })
        .onMessage(Register.class, m -> forward(m.group(), m.replyTo(),
            new ModelPackageGroup.Register(m.pkg(), m.user(), m.replyTo())))
        .onMessage(SetApproval.class, m -> forward(m.group(), m.replyTo(),
            new ModelPackageGroup.SetApproval(m.version(), m.status(), m.reason(), m.user(), m.replyTo())))
        .onMessage(Changed.class, m -> {
          summaries.put(m.state().name(), m.state());
          return Behaviors.same();
        })
        .onMessage(Recovered.class, m -> Behaviors.same())
        .build();
  }

  private Behavior<Command> onCreate(CreateGroup m) {
    String name = m.name() == null ? "" : m.name();
    if (!NAME.matcher(name).matches()) {
      m.replyTo().tell(StatusReply.error(RegistryException.invalid("invalid model package group name '" + name
          + "': 1 to 63 letters, digits and hyphens, starting and ending with a letter or digit")));
    } else if (summaries.containsKey(name)) {
      m.replyTo().tell(StatusReply.error(new RegistryException(RegistryException.Kind.CONFLICT,
          "model package group " + name + " already exists")));
    } else {
      // A group whose creation is in flight already has its entity, which refuses the second Create.
      ActorRef<ModelPackageGroup.Command> ref = groups.containsKey(name) ? groups.get(name) : spawn(name);
      ref.tell(new ModelPackageGroup.Create(
          m.description() == null ? "" : m.description(), m.user(), m.replyTo()));
    }
    return Behaviors.same();
  }

  private <T> Behavior<Command> forward(String group, ActorRef<StatusReply<T>> replyTo, ModelPackageGroup.Command c) {
    ActorRef<ModelPackageGroup.Command> ref = summaries.containsKey(group) ? groups.get(group) : null;
    if (ref == null) replyTo.tell(StatusReply.error(noGroup(group)));
    else ref.tell(c);
    return Behaviors.same();
  }

  private ActorRef<ModelPackageGroup.Command> spawn(String group) {
    ActorRef<ModelPackageGroup.Command> ref = ctx.spawn(ModelPackageGroup.create(group, listener), "group-" + group);
    groups.put(group, ref);
    return ref;
  }

  private static RegistryException noGroup(String name) {
    return RegistryException.notFound("no model package group " + name);
  }
}
