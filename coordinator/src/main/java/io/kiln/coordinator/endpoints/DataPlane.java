package io.kiln.coordinator.endpoints;

import io.kiln.coordinator.api.ApiToken;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.net.InetSocketAddress;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.Done;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorSystem;

/**
 * The endpoints' data plane: a Netty HTTP/1.1 listener ({@code kiln.endpoints.router.host/port},
 * epoll when available) for {@code /endpoints/{name}/invocations} and {@code /endpoints/{name}/v2/...}
 * with the API's bearer token, and the connections to replicas, on one group of event loops: a
 * request is read, forwarded, and answered on the same thread. Both this listener and the route on
 * the API port ({@link InvocationRouter}) call the one {@link #forwarder()}. Keep-alive; pipelined
 * requests are answered in order.
 */
public final class DataPlane implements AutoCloseable {
  private static final String PREFIX = "/endpoints/";
  /** Pipelined requests in progress on one connection beyond which it stops reading until answers leave. */
  private static final int MAX_PIPELINED = 16;

  private final EventLoopGroup loops;
  private final ReplicaConnections connections;
  private final InvocationForwarder forwarder;
  private final ApiToken token;
  private final Channel server;
  private final boolean epoll;
  private final String url;

  /** Starts the data plane for the coordinator; it stops when the actor system shuts down. */
  public static DataPlane start(ActorSystem<?> system, com.typesafe.config.Config config, Endpoints endpoints, ApiToken token)
      throws InterruptedException {
    DataPlane d = new DataPlane(RouterSettings.of(config), endpoints.routing(), endpoints::get, token);
    CoordinatedShutdown.get(system).addTask(CoordinatedShutdown.PhaseServiceUnbind(), "kiln-endpoint-data-plane", () -> {
      d.close();
      return CompletableFuture.completedFuture(Done.getInstance());
    });
    return d;
  }

  DataPlane(RouterSettings s, RoutingTable routing, InvocationForwarder.Status status, ApiToken token) throws InterruptedException {
    this.token = token;
    this.epoll = Epoll.isAvailable();
    int threads = s.ioThreads() > 0 ? s.ioThreads() : Runtime.getRuntime().availableProcessors();
    this.loops = new MultiThreadIoEventLoopGroup(threads, new DefaultThreadFactory("kiln-router-io", true),
        epoll ? EpollIoHandler.newFactory() : NioIoHandler.newFactory());
    try {
      this.connections = new ReplicaConnections(loops, epoll ? EpollSocketChannel.class : NioSocketChannel.class, s);
      routing.onForget(connections::forget);
      this.forwarder = new InvocationForwarder(routing, status, token.value(), connections);
      this.server = new ServerBootstrap().group(loops).channel(epoll ? EpollServerSocketChannel.class : NioServerSocketChannel.class)
          .option(ChannelOption.SO_BACKLOG, 1024)
          .option(ChannelOption.SO_REUSEADDR, true)
          .childOption(ChannelOption.TCP_NODELAY, true)
          .childHandler(new ChannelInitializer<SocketChannel>() {
            @Override
            protected void initChannel(SocketChannel ch) {
              ch.pipeline().addLast(new IdleStateHandler(0, 0, s.idleTimeout().toMillis(), TimeUnit.MILLISECONDS),
                  new HttpServerCodec(), new HttpObjectAggregator(s.maxBody()), new Connection());
            }
          })
          .bind(s.host(), s.port()).sync().channel();
    } catch (InterruptedException | RuntimeException e) {
      loops.shutdownGracefully(0, 1, TimeUnit.SECONDS);
      throw e;
    }
    int port = ((InetSocketAddress) server.localAddress()).getPort();
    this.url = "http://" + (s.host().contains(":") ? "[" + s.host() + "]" : s.host()) + ":" + port;
  }

  /** The base URL clients send invocations to ({@code <url>/endpoints/{name}/invocations}). */
  public String url() {
    return url;
  }

  /** "epoll" or "nio". */
  public String transport() {
    return epoll ? "epoll" : "nio";
  }

  /** The forwarding core (the API port's route uses it too). */
  public InvocationForwarder forwarder() {
    return forwarder;
  }

  /** The replica URLs with open pools (tests). */
  java.util.Set<String> pooledReplicas() {
    return connections.urls();
  }

  /** Stops listening, closes the connections to replicas and stops the event loops. */
  @Override
  public void close() {
    server.close().syncUninterruptibly();
    connections.close();
    loops.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
  }

  /** One caller's connection: each request is forwarded as it is read; answers leave in request order. */
  private final class Connection extends ChannelInboundHandlerAdapter {
    /** Done once the previous request's answer was written. */
    private CompletableFuture<Void> written = CompletableFuture.completedFuture(null);
    private int inProgress;
    /** A request without keep-alive was read: later ones on this connection are dropped. */
    private boolean closing;

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      if (!(msg instanceof FullHttpRequest req) || closing) { // the aggregator passes only whole requests
        ReferenceCountUtil.release(msg);
        return;
      }
      HttpVersion version = req.protocolVersion();
      boolean keepAlive = HttpUtil.isKeepAlive(req) && req.decoderResult().isSuccess();
      closing = !keepAlive;
      CompletableFuture<InvocationForwarder.Answer> answer;
      try {
        answer = answer(ctx, req);
      } finally {
        req.release();
      }
      // answers complete on this connection's loop, so the chain below writes them there, in order
      CompletableFuture<InvocationForwarder.Answer> here = new CompletableFuture<>();
      answer.whenComplete((a, e) -> {
        InvocationForwarder.Answer x = e == null ? a : InvocationForwarder.Answer.error(500, "internal error: " + e);
        if (ctx.executor().inEventLoop()) here.complete(x);
        else ctx.executor().execute(() -> here.complete(x));
      });
      if (++inProgress > MAX_PIPELINED) ctx.channel().config().setAutoRead(false);
      written = written.thenCompose(x -> here).thenAccept(a -> {
        try {
          write(ctx, a, version, keepAlive);
        } catch (RuntimeException e) { // a bug: drop the connection rather than the order of its answers
          ctx.close();
        }
      });
    }

    private CompletableFuture<InvocationForwarder.Answer> answer(ChannelHandlerContext ctx, FullHttpRequest req) {
      if (req.decoderResult().isFailure()) {
        return error(400, "malformed HTTP request: " + req.decoderResult().cause().getMessage());
      }
      String uri = req.uri();
      if (!uri.startsWith(PREFIX)) {
        return error(404, "no route " + uri.split("\\?", 2)[0]
            + " (the data plane serves /endpoints/{name}/invocations and /endpoints/{name}/v2/...)");
      }
      String auth = req.headers().get(HttpHeaderNames.AUTHORIZATION);
      if (!token.accepts(auth)) return error(401, ApiToken.refusal(auth));
      int end = PREFIX.length();
      while (end < uri.length() && uri.charAt(end) != '/' && uri.charAt(end) != '?') end++;
      String name = QueryStringDecoder.decodeComponent(uri.substring(PREFIX.length(), end));
      return forwarder.forward(new InvocationForwarder.Invocation(name, uri.substring(end), req.method().name(),
          req.headers()::get, req.content().retain(), ctx.channel().eventLoop()));
    }

    private static CompletableFuture<InvocationForwarder.Answer> error(int status, String message) {
      return CompletableFuture.completedFuture(InvocationForwarder.Answer.error(status, message));
    }

    private void write(ChannelHandlerContext ctx, InvocationForwarder.Answer a, HttpVersion version, boolean keepAlive) {
      FullHttpResponse out = new DefaultFullHttpResponse(version, HttpResponseStatus.valueOf(a.status()), a.body());
      HttpHeaders h = out.headers();
      for (Map.Entry<String, String> e : a.headers()) h.add(e.getKey(), e.getValue());
      if (a.contentType() != null) h.set(HttpHeaderNames.CONTENT_TYPE, a.contentType());
      h.setInt(HttpHeaderNames.CONTENT_LENGTH, a.body().readableBytes());
      if (!keepAlive) {
        h.set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        ctx.writeAndFlush(out).addListener(ChannelFutureListener.CLOSE);
      } else {
        if (version.equals(HttpVersion.HTTP_1_0)) h.set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
        ctx.writeAndFlush(out, ctx.voidPromise());
      }
      if (--inProgress <= MAX_PIPELINED && !ctx.channel().config().isAutoRead()) ctx.channel().config().setAutoRead(true);
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
      if (evt instanceof IdleStateEvent && inProgress == 0) ctx.close();
      else ctx.fireUserEventTriggered(evt);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      closing = true;
      ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      ctx.close();
    }
  }
}
