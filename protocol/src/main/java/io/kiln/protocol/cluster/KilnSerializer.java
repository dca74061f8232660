package io.kiln.protocol.cluster;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import io.kiln.protocol.proto.DescribeWorkerWire;
import io.kiln.protocol.proto.FormGroupWire;
import io.kiln.protocol.proto.StartTaskWire;
import io.kiln.protocol.proto.StopTaskWire;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.protocol.proto.WorkerCommandEnvelope;
import io.kiln.protocol.proto.WorkerInfo;
import java.io.NotSerializableException;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.SerializerWithStringManifest;

/**
 * Serializes everything Kiln sends between nodes or writes to its journal as protobuf.
 *
 * <p>Generated protobuf messages are written as they are, with their class name as manifest.
 * {@link KilnWireMessage} records (which hold typed actor references) are mapped to their wire
 * envelope, with references in {@link ActorRefResolver} string form. Java serialization is off.
 */
public final class KilnSerializer extends SerializerWithStringManifest {
  private static final String PROTO_PREFIX = "P:";
  private static final String WORKER_COMMAND = "W:WorkerCommand";

  private final ExtendedActorSystem system;
  private volatile ActorRefResolver resolver;
  private final ConcurrentHashMap<String, Parser<? extends Message>> parsers = new ConcurrentHashMap<>();

  public KilnSerializer(ExtendedActorSystem system) {
    this.system = system;
  }

  @Override
  public int identifier() {
    return 47_110;
  }

  @Override
  public String manifest(Object o) {
    if (o instanceof Message m) return PROTO_PREFIX + m.getClass().getName();
    if (o instanceof WorkerCommand) return WORKER_COMMAND;
    throw new IllegalArgumentException("KilnSerializer cannot serialize " + o.getClass().getName());
  }

  @Override
  public byte[] toBinary(Object o) {
    if (o instanceof Message m) return m.toByteArray();
    if (o instanceof WorkerCommand c) return toEnvelope(c).toByteArray();
    throw new IllegalArgumentException("KilnSerializer cannot serialize " + o.getClass().getName());
  }

  @Override
  public Object fromBinary(byte[] bytes, String manifest) throws NotSerializableException {
    try {
      if (manifest.startsWith(PROTO_PREFIX)) return parser(manifest.substring(PROTO_PREFIX.length())).parseFrom(bytes);
      if (manifest.equals(WORKER_COMMAND)) return fromEnvelope(WorkerCommandEnvelope.parseFrom(bytes));
    } catch (InvalidProtocolBufferException e) {
      throw new NotSerializableException("malformed " + manifest + ": " + e.getMessage());
    }
    throw new NotSerializableException("unknown manifest " + manifest);
  }

  private WorkerCommandEnvelope toEnvelope(WorkerCommand command) {
    ActorRefResolver r = resolver();
    var b = WorkerCommandEnvelope.newBuilder();
    if (command instanceof WorkerCommand.DescribeWorker d) {
      b.setDescribe(DescribeWorkerWire.newBuilder().setReplyTo(r.toSerializationFormat(d.replyTo())));
    } else if (command instanceof WorkerCommand.StartTask s) {
      b.setStart(StartTaskWire.newBuilder()
          .setAssignment(s.assignment()).setReportTo(r.toSerializationFormat(s.reportTo())));
    } else if (command instanceof WorkerCommand.StopTask s) {
      b.setStop(StopTaskWire.newBuilder().setJobId(s.jobId()).setTaskId(s.taskId()).setReason(s.reason()));
    } else if (command instanceof WorkerCommand.FormGroup g) {
      b.setFormGroup(FormGroupWire.newBuilder().setJobId(g.jobId()).setTaskId(g.taskId()).setGroup(g.group()));
    } else if (command instanceof WorkerCommand.RegroupTask g) {
      b.setRegroup(io.kiln.protocol.proto.RegroupTaskWire.newBuilder().setJobId(g.jobId()).setTaskId(g.taskId())
          .setGeneration(g.generation()).setReason(g.reason()).setUrgent(g.urgent()));
    } else if (command instanceof WorkerCommand.StartHosted h) {
      b.setStartHosted(io.kiln.protocol.proto.StartHostedWire.newBuilder().setSpec(h.spec())
          .setReplyTo(r.toSerializationFormat(h.replyTo())));
    } else if (command instanceof WorkerCommand.StopHosted h) {
      b.setStopHosted(io.kiln.protocol.proto.StopHostedWire.newBuilder().setId(h.id()).setReason(h.reason()));
    } else if (command instanceof WorkerCommand.AttachTask t) {
      b.setAttach(io.kiln.protocol.proto.AttachTaskWire.newBuilder().setJobId(t.jobId()).setTaskId(t.taskId())
          .setReportTo(r.toSerializationFormat(t.reportTo())));
    }
    return b.build();
  }

  private WorkerCommand fromEnvelope(WorkerCommandEnvelope e) throws NotSerializableException {
    ActorRefResolver r = resolver();
    return switch (e.getKindCase()) {
      case DESCRIBE -> new WorkerCommand.DescribeWorker(r.<WorkerInfo>resolveActorRef(e.getDescribe().getReplyTo()));
      case START -> new WorkerCommand.StartTask(e.getStart().getAssignment(),
          r.<TaskReport>resolveActorRef(e.getStart().getReportTo()));
      case STOP -> new WorkerCommand.StopTask(e.getStop().getJobId(), e.getStop().getTaskId(), e.getStop().getReason());
      case FORM_GROUP -> new WorkerCommand.FormGroup(e.getFormGroup().getJobId(), e.getFormGroup().getTaskId(),
          e.getFormGroup().getGroup());
      case REGROUP -> new WorkerCommand.RegroupTask(e.getRegroup().getJobId(), e.getRegroup().getTaskId(),
          e.getRegroup().getGeneration(), e.getRegroup().getReason(), e.getRegroup().getUrgent());
      case ATTACH -> new WorkerCommand.AttachTask(e.getAttach().getJobId(), e.getAttach().getTaskId(),
          r.<TaskReport>resolveActorRef(e.getAttach().getReportTo()));
      case START_HOSTED -> new WorkerCommand.StartHosted(e.getStartHosted().getSpec(),
          r.<io.kiln.protocol.proto.HostedProcessReport>resolveActorRef(e.getStartHosted().getReplyTo()));
      case STOP_HOSTED -> new WorkerCommand.StopHosted(e.getStopHosted().getId(), e.getStopHosted().getReason());
      case KIND_NOT_SET -> throw new NotSerializableException("WorkerCommandEnvelope without a command");
    };
  }

  @SuppressWarnings("unchecked")
  private Parser<? extends Message> parser(String className) throws NotSerializableException {
    Parser<? extends Message> p = parsers.get(className);
    if (p != null) return p;
    if (!className.startsWith("io.kiln.protocol.proto.")) {
      // Only Kiln's own generated classes: a manifest must never make us load arbitrary classes.
      throw new NotSerializableException("refusing protobuf class outside io.kiln.protocol.proto: " + className);
    }
    try {
      Class<?> cls = Class.forName(className, true, getClass().getClassLoader());
      Message defaultInstance = (Message) cls.getMethod("getDefaultInstance").invoke(null);
      p = defaultInstance.getParserForType();
      parsers.put(className, p);
      return p;
    } catch (ReflectiveOperationException | ClassCastException e) {
      throw new NotSerializableException("unknown protobuf class " + className);
    }
  }

  private ActorRefResolver resolver() {
    ActorRefResolver r = resolver;
    if (r == null) {
      r = ActorRefResolver.get(Adapter.toTyped(system));
      resolver = r;
    }
    return r;
  }
}
