package io.kiln.coordinator.endpoints;

import java.util.List;
import java.util.TreeMap;
import java.util.function.Supplier;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.StashBuffer;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;

/**
 * Keeps one {@link Endpoint} entity per name. At start it recovers every endpoint in the journal
 * (so their replicas are reattached or restarted at once); requests wait until that list is read.
 * A node-local actor: replicas are child processes of this coordinator and its router serves them.
 */
public final class EndpointManager {

  public sealed interface Command {}

  /** The entity of {@code name}, started when needed. */
  public record Entity(String name, ActorRef<ActorRef<Endpoint.Command>> replyTo) implements Command {}

  /** Every endpoint name the journal or this run knows (deleted ones included). */
  public record Names(ActorRef<List<String>> replyTo) implements Command {}

  private record IdsLoaded(List<String> names) implements Command {}

  private record IdsFailed(String reason) implements Command {}

  /** Where the manager finds persisted ids (the JDBC read journal in production). */
  public interface IdSource extends Supplier<Source<String, NotUsed>> {}

  public static Behavior<Command> create(IdSource ids, Endpoint.Context context) {
    return Behaviors.withStash(10_000, stash -> Behaviors.setup(ctx -> new EndpointManager(ctx, stash, context).loading(ids)));
  }

  private final ActorContext<Command> ctx;
  private final StashBuffer<Command> stash;
  private final Endpoint.Context context;
  private final TreeMap<String, ActorRef<Endpoint.Command>> entities = new TreeMap<>();

  private EndpointManager(ActorContext<Command> ctx, StashBuffer<Command> stash, Endpoint.Context context) {
    this.ctx = ctx;
    this.stash = stash;
    this.context = context;
  }

  private Behavior<Command> loading(IdSource ids) {
    String prefix = Endpoint.ENTITY_TYPE + "|";
    ctx.pipeToSelf(ids.get().filter(id -> id.startsWith(prefix)).map(id -> id.substring(prefix.length()))
            .runWith(Sink.seq(), ctx.getSystem()),
        (names, err) -> err == null ? new IdsLoaded(names) : new IdsFailed(err.toString()));
    return Behaviors.receive(Command.class)
        .onMessage(IdsLoaded.class, l -> {
          l.names().forEach(this::entity);
          ctx.getLog().info("endpoints: {} recovered from the journal", l.names().size());
          return stash.unstashAll(running());
        })
        .onMessage(IdsFailed.class, f -> {
          ctx.getLog().error("endpoints: cannot list the journal ({}); starting without recovered endpoints", f.reason());
          return stash.unstashAll(running());
        })
        .onAnyMessage(m -> {
          stash.stash(m);
          return Behaviors.same();
        })
        .build();
  }

  private Behavior<Command> running() {
    return Behaviors.receive(Command.class)
        .onMessage(Entity.class, e -> {
          e.replyTo().tell(entity(e.name()));
          return Behaviors.same();
        })
        .onMessage(Names.class, n -> {
          n.replyTo().tell(List.copyOf(entities.keySet()));
          return Behaviors.same();
        })
        .build();
  }

  private ActorRef<Endpoint.Command> entity(String name) {
    return entities.computeIfAbsent(name, n -> ctx.spawn(Endpoint.create(n, context), "endpoint-" + n));
  }
}
