package io.kiln.coordinator.registry;

import static org.junit.jupiter.api.Assertions.*;

import com.typesafe.config.ConfigFactory;
import io.kiln.protocol.proto.ModelLineage;
import io.kiln.protocol.proto.ModelPackage;
import io.kiln.protocol.proto.RegistryEvent;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.persistence.testkit.javadsl.EventSourcedBehaviorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The group entity command by command; every event round-trips the protobuf serializer. */
class ModelPackageGroupTest {
  static final ActorTestKit kit = ActorTestKit.create(EventSourcedBehaviorTestKit.config()
      .withFallback(ConfigFactory.parseString("pekko.actor.provider = local"))
      .withFallback(ConfigFactory.load()));

  static final ModelPackage PKG = ModelPackage.newBuilder().setArtifactUri("file:/a/jobs/job-1/model/")
      .setFramework("mlp").putMetrics("test_accuracy", 0.84)
      .setLineage(ModelLineage.newBuilder().setTrainingJobId("job-1").putHyperparameters("epochs", "3")).build();

  EventSourcedBehaviorTestKit<ModelPackageGroup.Command, RegistryEvent, GroupState> group;
  List<GroupState> changes;

  @BeforeEach
  void setUp() {
    changes = new CopyOnWriteArrayList<>();
    group = EventSourcedBehaviorTestKit.create(kit.system(),
        ModelPackageGroup.create("fashion", new ModelPackageGroup.Listener(changes::add, s -> {})),
        new EventSourcedBehaviorTestKit.SerializationSettings(true, true, false, true, false));
  }

  @AfterEach
  void clear() {
    group.clear();
  }

  @AfterAll
  static void tearDown() {
    kit.shutdownTestKit();
  }

  private StatusReply<ModelVersion> register() {
    return group.<StatusReply<ModelVersion>>runCommand(r -> new ModelPackageGroup.Register(PKG, "alice", r)).reply();
  }

  private StatusReply<ModelVersion> approval(int v, ApprovalStatus s, String reason, String user) {
    return group.<StatusReply<ModelVersion>>runCommand(r -> new ModelPackageGroup.SetApproval(v, s, reason, user, r)).reply();
  }

  private static RegistryException.Kind kind(StatusReply<?> r) {
    assertTrue(r.isError(), "expected an error");
    return ((RegistryException) r.getError()).kind();
  }

  @Test
  void versionsAreNumberedAndApprovalHistoryIsKept() {
    assertEquals(RegistryException.Kind.NOT_FOUND, kind(register()), "no versions before the group exists");
    var created = group.<StatusReply<GroupState>>runCommand(r -> new ModelPackageGroup.Create("fashion models", "alice", r));
    assertTrue(created.reply().isSuccess());
    assertEquals("fashion models", created.state().description());
    assertEquals(RegistryException.Kind.CONFLICT,
        kind(group.<StatusReply<GroupState>>runCommand(r -> new ModelPackageGroup.Create("again", "bob", r)).reply()));

    ModelVersion v1 = register().getValue();
    ModelVersion v2 = register().getValue();
    assertEquals(1, v1.version());
    assertEquals(2, v2.version());
    assertEquals(ApprovalStatus.PendingManualApproval, v2.status());
    assertEquals(PKG, v2.pkg());
    assertTrue(group.getState().latestApproved().isEmpty());

    assertEquals(ApprovalStatus.Approved, approval(1, ApprovalStatus.Approved, "beats baseline", "bob").getValue().status());
    assertEquals(1, group.getState().latestApproved().orElseThrow().version());
    approval(2, ApprovalStatus.Approved, "better still", "carol");
    assertEquals(2, group.getState().latestApproved().orElseThrow().version());
    ModelVersion revoked = approval(2, ApprovalStatus.Rejected, "drifts on new data", "bob").getValue();
    assertEquals(1, group.getState().latestApproved().orElseThrow().version(), "a rejected version is not served");

    // Refused changes: same status, back to pending, unknown version.
    assertEquals(RegistryException.Kind.INVALID, kind(approval(1, ApprovalStatus.Approved, "", "bob")));
    StatusReply<ModelVersion> back = approval(2, ApprovalStatus.PendingManualApproval, "", "bob");
    assertEquals(RegistryException.Kind.INVALID, kind(back));
    assertTrue(back.getError().getMessage().contains("cannot go back to PendingManualApproval"), back.getError().getMessage());
    StatusReply<ModelVersion> missing = approval(7, ApprovalStatus.Approved, "", "bob");
    assertEquals(RegistryException.Kind.NOT_FOUND, kind(missing));
    assertTrue(missing.getError().getMessage().contains("versions 1..2"), missing.getError().getMessage());

    assertEquals(List.of(ApprovalStatus.PendingManualApproval, ApprovalStatus.Approved, ApprovalStatus.Rejected),
        revoked.history().stream().map(ModelVersion.ApprovalChange::status).toList());
    assertEquals(List.of("alice", "carol", "bob"), revoked.history().stream().map(ModelVersion.ApprovalChange::by).toList());
    assertEquals("drifts on new data", revoked.history().get(2).reason());
    assertEquals(6, changes.size(), "the manager hears of every persisted change");

    // Recovery replays the same state.
    GroupState before = group.getState();
    group.restart();
    assertEquals(before, group.getState());
  }
}
