package io.kiln.protocol.cluster;

import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.actor.Props;
import org.apache.pekko.cluster.DowningProvider;
import scala.Option;
import scala.concurrent.duration.FiniteDuration;

/**
 * Kiln's downing strategy (see {@link CoordinatorDowning}): the coordinator nodes decide who leaves
 * the cluster. Configured as {@code pekko.cluster.downing-provider-class} in reference.conf.
 *
 * <p>Why not Pekko's split-brain resolver: it lets the cluster leader decide, and the leader is
 * whichever node has the lowest address, often a worker. When workers were killed one after the
 * other on a loaded host, stale reachability records of a dead node made the resolver take its
 * "indirectly connected" and "unstable" paths, both of which down every node, the coordinator
 * included. Here the control plane is the authority: the side of a partition that holds (a
 * majority of) the coordinator nodes keeps running, every other node downs itself.
 */
public final class CoordinatorDowningProvider extends DowningProvider {
  private final CoordinatorDowning.Settings settings;

  public CoordinatorDowningProvider(ActorSystem system) {
    this.settings = CoordinatorDowning.Settings.fromConfig(system.settings().config());
  }

  @Override
  public FiniteDuration downRemovalMargin() {
    return FiniteDuration.apply(0, TimeUnit.MILLISECONDS);
  }

  @Override
  public Option<Props> downingActorProps() {
    return Option.apply(Props.create(CoordinatorDowning.class, () -> new CoordinatorDowning(settings)));
  }
}
