package io.kiln.protocol.cluster;

import com.typesafe.config.Config;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.AbstractActorWithTimers;
import org.apache.pekko.cluster.Cluster;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.UniqueAddress;
import org.apache.pekko.event.Logging;
import org.apache.pekko.event.LoggingAdapter;

/**
 * Downs unreachable nodes with the coordinator as the authority (one instance per node, started by
 * {@link CoordinatorDowningProvider}). Every second:
 *
 * <ul>
 *   <li>On a node with the authority role ({@code coordinator}) that reaches a majority of the
 *       authority nodes: every member unreachable for {@code stable-after} is downed. The node's
 *       tasks are then lost to their jobs, which regroup or restart (docs/elastic.md).
 *   <li>On any other node: when a majority of the authority nodes has been unreachable for
 *       {@code stable-after}, the node downs itself. A worker then starts a fresh actor system
 *       that joins again; its tasks keep training and re-attach to their jobs when it is back.
 * </ul>
 *
 * Both sides of a partition come to the same answer without talking to each other, so at most
 * one side (the coordinator's) keeps running. With several coordinator nodes a minority of them
 * downs nothing (and is downed by the majority side). A flapping link only delays decisions:
 * unlike Pekko's resolver there is no "down all" outcome.
 */
public final class CoordinatorDowning extends AbstractActorWithTimers {

  /** {@code kiln.cluster.downing}: who decides and after how long. */
  public record Settings(String authorityRole, Duration stableAfter) {
    public static Settings fromConfig(Config config) {
      Config c = config.getConfig("kiln.cluster.downing");
      return new Settings(c.getString("authority-role"), c.getDuration("stable-after"));
    }
  }

  private static final Object TICK = "tick";

  private final Settings settings;
  private final Cluster cluster = Cluster.get(getContext().getSystem());
  private final LoggingAdapter log = Logging.getLogger(getContext().getSystem(), this);
  /** When each member was first seen unreachable (by its incarnation). */
  private final Map<UniqueAddress, Long> unreachableSince = new HashMap<>();
  /** When this (non-authority) node first found no majority of the authority reachable; 0 when it does. */
  private long cutOffSince;
  private final Set<UniqueAddress> downed = new HashSet<>();

  public CoordinatorDowning(Settings settings) {
    this.settings = settings;
    getTimers().startTimerWithFixedDelay(TICK, TICK, java.time.Duration.ofSeconds(1));
  }

  @Override
  public Receive createReceive() {
    return receiveBuilder().matchEquals(TICK, t -> tick()).build();
  }

  private void tick() {
    var state = cluster.state();
    Set<Member> unreachable = state.getUnreachable();
    long now = System.nanoTime();
    Set<UniqueAddress> current = new HashSet<>();
    for (Member m : unreachable) {
      current.add(m.uniqueAddress());
      unreachableSince.putIfAbsent(m.uniqueAddress(), now);
    }
    unreachableSince.keySet().retainAll(current);

    int authorities = 0;
    int reachableAuthorities = 0;
    for (Member m : state.getMembers()) {
      if (!m.hasRole(settings.authorityRole()) || isGone(m)) continue;
      authorities++;
      if (!unreachable.contains(m)) reachableAuthorities++;
    }
    boolean majority = reachableAuthorities * 2 > authorities;
    long stable = settings.stableAfter().toNanos();
    Member self = cluster.selfMember();

    if (self.hasRole(settings.authorityRole())) {
      if (!majority) return; // a minority of the coordinators: the majority side decides
      for (Member m : unreachable) {
        if (isGone(m) || downed.contains(m.uniqueAddress())) continue;
        if (now - unreachableSince.get(m.uniqueAddress()) < stable) continue;
        log.warning("downing {} (roles {}): unreachable for {} s", m.address(), m.getRoles(),
            settings.stableAfter().toSeconds());
        downed.add(m.uniqueAddress());
        cluster.down(m.address());
      }
      return;
    }
    // Not an authority: stay while a majority of the coordinators is reachable (or none has joined
    // yet: a starting cluster, or the coordinator was removed, which the node's own logic handles).
    if (authorities == 0 || majority) {
      cutOffSince = 0;
      return;
    }
    if (cutOffSince == 0) cutOffSince = now;
    if (now - cutOffSince >= stable && !downed.contains(self.uniqueAddress())) {
      log.warning("downing this node: {} of {} coordinator node(s) reachable for {} s (cut off from the control plane)",
          reachableAuthorities, authorities, settings.stableAfter().toSeconds());
      downed.add(self.uniqueAddress());
      cluster.down(self.address());
    }
  }

  private static boolean isGone(Member m) {
    return m.status() == MemberStatus.down() || m.status() == MemberStatus.removed()
        || m.status() == MemberStatus.exiting();
  }
}
