package io.kiln.protocol;

import static org.junit.jupiter.api.Assertions.*;

import com.google.protobuf.ByteString;
import com.typesafe.config.ConfigFactory;
import io.kiln.protocol.cluster.KilnSerializer;
import io.kiln.protocol.cluster.WorkerCommand;
import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.JobSpec;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.protocol.proto.TaskStarted;
import io.kiln.protocol.proto.WorkerInfo;
import java.io.NotSerializableException;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/** Every cross-node message round-trips through Pekko serialization as protobuf, never Java. */
class KilnSerializerTest {
  static final ActorTestKit kit = ActorTestKit.create(ConfigFactory.parseString("pekko.actor.provider = local")
      .withFallback(ConfigFactory.load()));

  @AfterAll
  static void tearDown() {
    kit.shutdownTestKit();
  }

  private Object roundTrip(Object o) throws NotSerializableException {
    Serialization s = SerializationExtension.get(kit.system().classicSystem());
    var serializer = s.findSerializerFor(o);
    assertInstanceOf(KilnSerializer.class, serializer, "bound to the Kiln serializer: " + o.getClass());
    byte[] bytes = s.serialize(o).get();
    return s.deserialize(bytes, serializer.identifier(), Serializers.manifestFor(serializer, o)).get();
  }

  @Test
  void protobufMessagesAndWorkerCommandsRoundTrip() throws Exception {
    TestProbe<TaskReport> reports = kit.createTestProbe();
    TestProbe<WorkerInfo> infos = kit.createTestProbe();
    TaskAssignment a = TaskAssignment.newBuilder().setJobId("j").setTaskId("j-r0").setWorldSize(2)
        .setSpec(JobSpec.newBuilder().setName("n").putHyperparameters("epochs", "2")).build();
    TaskReport r = TaskReport.newBuilder().setJobId("j").setStarted(TaskStarted.newBuilder().setTimestampMs(5)).build();
    assertEquals(r, roundTrip(r));
    assertEquals(new WorkerCommand.StartTask(a, reports.ref()), roundTrip(new WorkerCommand.StartTask(a, reports.ref())));
    assertEquals(new WorkerCommand.DescribeWorker(infos.ref()), roundTrip(new WorkerCommand.DescribeWorker(infos.ref())));
    assertEquals(new WorkerCommand.StopTask("j", "j-r0", "why"), roundTrip(new WorkerCommand.StopTask("j", "j-r0", "why")));
    GroupSpec g = GroupSpec.newBuilder().setGeneration(3).addDataAddresses("127.0.0.1:1").addDataAddresses("127.0.0.1:2")
        .setNcclUniqueId(ByteString.copyFrom(new byte[128])).setBackend("ring").build();
    assertEquals(new WorkerCommand.FormGroup("j", "j-r1", g), roundTrip(new WorkerCommand.FormGroup("j", "j-r1", g)));
    TestProbe<io.kiln.protocol.proto.HostedProcessReport> hosted = kit.createTestProbe();
    var spec = io.kiln.protocol.proto.HostedProcessSpec.newBuilder().setId("endpoint/e/g1/a/1").setMainClass("M")
        .addArgs("--model").addArgs("file:/m").putEnv("KILN_TOKEN", "t").setTimeoutMs(5).build();
    assertEquals(new WorkerCommand.StartHosted(spec, hosted.ref()), roundTrip(new WorkerCommand.StartHosted(spec, hosted.ref())));
    assertEquals(new WorkerCommand.StopHosted("endpoint/e/g1/a/1", "drained"),
        roundTrip(new WorkerCommand.StopHosted("endpoint/e/g1/a/1", "drained")));
  }

  @Test
  void refusesManifestsOutsideKilnsProtocol() {
    KilnSerializer s = new KilnSerializer((org.apache.pekko.actor.ExtendedActorSystem) kit.system().classicSystem());
    assertThrows(NotSerializableException.class, () -> s.fromBinary(new byte[0], "P:java.lang.Runtime"));
    assertThrows(NotSerializableException.class, () -> s.fromBinary(new byte[] {1, 2, 3}, "P:io.kiln.protocol.proto.TaskReport"));
    assertThrows(NotSerializableException.class, () -> s.fromBinary(new byte[0], "Z:unknown"));
  }
}
