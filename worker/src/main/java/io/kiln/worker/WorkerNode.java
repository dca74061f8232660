package io.kiln.worker;

import io.kiln.protocol.cluster.WorkerCommand;
import io.kiln.worker.agent.WorkerAgent;
import io.kiln.worker.task.GradientSyncFactory;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.AddressFromURIString;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Subscribe;

/**
 * The guardian of a worker's actor system: spawns the {@link WorkerAgent} and watches cluster
 * membership. When the coordinator (a member with {@code kiln.worker.coordinator-role}, or the seed
 * node) leaves or is removed, it asks for a restart: the caller ({@link WorkerMain}) terminates this
 * actor system, which stops the running tasks, and starts a fresh one that joins the seed again.
 * (When this node itself is downed, Pekko terminates the system on its own and the same happens.)
 */
public final class WorkerNode {

  /** The guardian's protocol: internal only (cluster events and timers); nothing sends to it from outside. */
  public sealed interface Event extends NoSerializationVerificationNeeded permits MemberEvent, JoinCheck {}

  private record MemberEvent(ClusterEvent.MemberEvent event) implements Event {}

  private enum JoinCheck implements Event { INSTANCE }

  private WorkerNode() {}

  /**
   * @param seed the seed address {@code host:port} (the coordinator, locally)
   * @param restart called (once) with a reason when the system should be replaced by a fresh one
   * @param shutdownReason passed to the agent: why running tasks stop when the system terminates
   */
  public static Behavior<Event> create(WorkerSettings settings, String seed, GradientSyncFactory syncFactory,
      Consumer<String> restart, Supplier<String> shutdownReason) {
    return create(settings, seed, syncFactory, restart, shutdownReason, io.kiln.worker.agent.TaskRegistry.stopWithSystem(),
        io.kiln.worker.hosting.HostedProcesses.none(settings.workerId()));
  }

  /**
   * @param registry the process's running tasks, which outlive this actor system when it allows
   * @param hosted the process's endpoint replicas and transform splits, which outlive it too
   */
  public static Behavior<Event> create(WorkerSettings settings, String seed, GradientSyncFactory syncFactory,
      Consumer<String> restart, Supplier<String> shutdownReason, io.kiln.worker.agent.TaskRegistry registry,
      io.kiln.worker.hosting.HostedProcesses hosted) {
    return Behaviors.<Event>setup(ctx -> {
      ActorRef<WorkerCommand> agent = ctx.spawn(WorkerAgent.create(settings, syncFactory, shutdownReason, registry, hosted),
          "worker-agent");
      ctx.watch(agent);
      Cluster cluster = Cluster.get(ctx.getSystem());
      Address seedAddress = seedAddress(seed);
      ctx.getLog().info("worker {} at {} joining the cluster through seed {}", settings.workerId(),
          cluster.selfMember().address(), seedAddress);
      ActorRef<ClusterEvent.MemberEvent> adapter = ctx.messageAdapter(ClusterEvent.MemberEvent.class, MemberEvent::new);
      cluster.subscriptions().tell(Subscribe.create(adapter, ClusterEvent.MemberEvent.class));
      long startedNanos = System.nanoTime();
      boolean[] restartRequested = {false};
      return Behaviors.<Event>withTimers(timers -> {
        timers.startTimerWithFixedDelay(JoinCheck.INSTANCE, settings.joinLogInterval());
        return Behaviors.receive(Event.class)
            .onMessage(MemberEvent.class, m -> {
              ClusterEvent.MemberEvent e = m.event();
              Member member = e.member();
              boolean self = member.uniqueAddress().equals(cluster.selfMember().uniqueAddress());
              if (e instanceof ClusterEvent.MemberUp && self) {
                timers.cancel(JoinCheck.INSTANCE);
                ctx.getLog().info("worker {} joined the cluster as {} (roles {})", settings.workerId(),
                    member.address(), member.getRoles());
              } else if (e instanceof ClusterEvent.MemberUp) {
                ctx.getLog().info("member up: {} (roles {})", member.address(), member.getRoles());
              } else if (e instanceof ClusterEvent.MemberDowned && self && !restartRequested[0]) {
                restartRequested[0] = true;
                String why = "this node was downed (the split-brain resolver found the coordinator unreachable)";
                ctx.getLog().warn("{}: re-joining with a fresh actor system; "
                    + "running tasks keep training and wait for the coordinator to re-attach them", why);
                restart.accept(why);
              } else if ((e instanceof ClusterEvent.MemberRemoved || e instanceof ClusterEvent.MemberExited
                  || e instanceof ClusterEvent.MemberLeft || e instanceof ClusterEvent.MemberDowned)
                  && !self && isCoordinator(member, settings, seedAddress) && !restartRequested[0]
                  && !selfLeaving(cluster)) {
                restartRequested[0] = true;
                String why = "the coordinator at " + member.address() + " left the cluster ("
                    + e.getClass().getSimpleName() + ")";
                ctx.getLog().warn("{}: re-joining with a fresh actor system; "
                    + "running tasks keep training and wait for the coordinator to re-attach them", why);
                restart.accept(why);
              }
              return Behaviors.same();
            })
            .onMessageEquals(JoinCheck.INSTANCE, () -> {
              ctx.getLog().info("worker {} not in the cluster yet after {} s: still trying seed {}", settings.workerId(),
                  (System.nanoTime() - startedNanos) / 1_000_000_000L, seedAddress);
              return Behaviors.same();
            })
            .build();
      });
    });
  }

  /** This node is leaving or gone already: the coordinator's departure is no reason to restart. */
  static boolean selfLeaving(Cluster cluster) {
    MemberStatus s = cluster.selfMember().status();
    return s == MemberStatus.leaving() || s == MemberStatus.exiting() || s == MemberStatus.down()
        || s == MemberStatus.removed();
  }

  static boolean isCoordinator(Member m, WorkerSettings settings, Address seedAddress) {
    if (!settings.coordinatorRole().isBlank() && m.hasRole(settings.coordinatorRole())) return true;
    return seedAddress != null && m.address().equals(seedAddress);
  }

  static Address seedAddress(String seed) {
    try {
      return AddressFromURIString.parse("pekko://kiln@" + seed);
    } catch (RuntimeException e) {
      return null;
    }
  }
}
