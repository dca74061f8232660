package io.kiln.coordinator.endpoints;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.pool.AbstractChannelPoolHandler;
import io.netty.channel.pool.ChannelHealthChecker;
import io.netty.channel.pool.ChannelPool;
import io.netty.channel.pool.FixedChannelPool;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.FutureListener;
import io.netty.util.concurrent.ScheduledFuture;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The router's keep-alive HTTP/1.1 connections to replicas, on Netty. Per replica URL there is one
 * {@link FixedChannelPool} per event loop, whose connections live on that loop: a request read by
 * the data-plane listener on a loop is sent, and its answer read and written back, on that one
 * thread (no hand-off). Pools hand out the most recently used connection first, check that it is
 * still open, and discard a connection after any error, a {@code Connection: close}, or
 * {@code idle-timeout} without traffic. One request at a time per connection (no pipelining).
 */
final class ReplicaConnections implements AutoCloseable {

  /**
   * The request did not reach the replica: no connection could be made, or the connection closed
   * before the whole request was written. The replica cannot have acted on it, so it may go to another.
   */
  static final class NotSent extends IOException {
    NotSent(String message, Throwable cause) {
      super(message, cause);
    }
  }

  private final List<EventLoop> loops = new ArrayList<>();
  private final Bootstrap bootstrap;
  private final RouterSettings settings;
  private final Map<String, FixedChannelPool[]> pools = new ConcurrentHashMap<>();
  private final java.util.concurrent.atomic.AtomicInteger next = new java.util.concurrent.atomic.AtomicInteger();
  private volatile boolean closed;

  ReplicaConnections(EventLoopGroup group, Class<? extends Channel> channelType, RouterSettings settings) {
    this.settings = settings;
    for (EventExecutor e : group) loops.add((EventLoop) e);
    this.bootstrap = new Bootstrap().channel(channelType)
        .option(ChannelOption.TCP_NODELAY, true)
        .option(ChannelOption.SO_KEEPALIVE, true)
        .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) settings.connectTimeout().toMillis());
  }

  /**
   * Sends {@code req} (released here in every case) to the replica at {@code url} over a pooled
   * connection of {@code loop} (any loop of the group when null or foreign); the answer, complete
   * in memory, completes on that loop. Fails with {@link NotSent} when the request never reached
   * the replica, with another exception when it did but no valid answer came within {@code response-timeout}.
   */
  CompletableFuture<FullHttpResponse> send(String url, EventLoop loop, FullHttpRequest req) {
    CompletableFuture<FullHttpResponse> result = new CompletableFuture<>();
    int i = loop == null ? -1 : loops.indexOf(loop);
    if (i < 0) i = Math.floorMod(next.getAndIncrement(), loops.size());
    FixedChannelPool pool;
    try {
      if (closed) throw new IllegalStateException("the router is stopping");
      pool = pools.computeIfAbsent(url, this::create)[i];
    } catch (RuntimeException e) {
      req.release();
      result.completeExceptionally(new NotSent("has no connection (" + e.getMessage() + ")", e));
      return result;
    }
    EventLoop on = loops.get(i);
    Runnable acquire = () -> pool.acquire().addListener((FutureListener<Channel>) f -> {
      if (f.isSuccess()) {
        Channel ch = f.getNow();
        ch.pipeline().get(Exchange.class).start(ch, pool, req, result);
      } else {
        req.release();
        result.completeExceptionally(acquireFailure(f.cause()));
      }
    });
    if (on.inEventLoop()) acquire.run();
    else on.execute(acquire);
    return result;
  }

  private Exception acquireFailure(Throwable cause) {
    if (cause instanceof ConnectException) return new NotSent("refused the connection (" + cause.getMessage() + ")", cause);
    if (cause instanceof TimeoutException) {
      return new IOException("had no free connection within " + settings.responseTimeout().toMillis() + " ms", cause);
    }
    if (cause instanceof IllegalStateException) return new NotSent("has no connection (" + cause.getMessage() + ")", cause);
    return new IOException("could not be reached: " + cause, cause);
  }

  /** Closes the connections to a replica that is gone (those in use close when their request ends). */
  void forget(String url) {
    FixedChannelPool[] ps = pools.remove(url);
    if (ps != null) for (FixedChannelPool p : ps) p.closeAsync();
  }

  /** The replica URLs with a pool (tests). */
  java.util.Set<String> urls() {
    return java.util.Set.copyOf(pools.keySet());
  }

  @Override
  public void close() {
    closed = true;
    for (String url : List.copyOf(pools.keySet())) forget(url);
  }

  private FixedChannelPool[] create(String url) {
    URI u = URI.create(url);
    if (u.getHost() == null) throw new IllegalArgumentException("not an http URL: " + url);
    int port = u.getPort() > 0 ? u.getPort() : 80;
    int n = loops.size();
    int maxConnections = Math.max(1, (settings.maxConnections() + n - 1) / n);
    int maxPending = Math.max(1, (settings.maxOpenRequests() + n - 1) / n);
    FixedChannelPool[] ps = new FixedChannelPool[n];
    for (int i = 0; i < n; i++) {
      ps[i] = new FixedChannelPool(bootstrap.clone(loops.get(i)).remoteAddress(u.getHost(), port), new AbstractChannelPoolHandler() {
        @Override
        public void channelCreated(Channel ch) {
          ch.pipeline().addLast(new HttpClientCodec(), new HttpObjectAggregator(settings.maxResponse()),
              new IdleStateHandler(0, 0, settings.idleTimeout().toMillis(), TimeUnit.MILLISECONDS), new Exchange());
        }
      }, ChannelHealthChecker.ACTIVE, FixedChannelPool.AcquireTimeoutAction.FAIL, settings.responseTimeout().toMillis(),
          maxConnections, maxPending, true, true);
    }
    return ps;
  }

  /** The request in progress on one pooled connection, and how it ends: an answer, an error, the timeout. */
  private final class Exchange extends ChannelInboundHandlerAdapter {
    private CompletableFuture<FullHttpResponse> pending;
    private ChannelPool pool;
    private ScheduledFuture<?> timer;
    /** The whole request was handed to the socket: from then on the replica may be acting on it. */
    private boolean sent;

    void start(Channel ch, ChannelPool pool, FullHttpRequest req, CompletableFuture<FullHttpResponse> result) {
      this.pool = pool;
      this.pending = result;
      this.sent = false;
      long ms = settings.responseTimeout().toMillis();
      timer = ch.eventLoop().schedule(() -> fail(ch, new TimeoutException("gave no answer within " + ms + " ms")), ms,
          TimeUnit.MILLISECONDS);
      ch.writeAndFlush(req).addListener((Future<Void> w) -> {
        if (pending != result) return;
        if (w.isSuccess()) sent = true;
        else fail(ch, new NotSent("closed the connection before the request was sent (" + w.cause() + ")", w.cause()));
      });
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      CompletableFuture<FullHttpResponse> p = pending;
      if (!(msg instanceof FullHttpResponse r) || p == null) { // nothing asked: the connection is out of step
        ReferenceCountUtil.release(msg);
        ctx.close();
        return;
      }
      if (r.decoderResult().isFailure()) {
        r.release();
        fail(ctx.channel(), new IOException("sent a malformed answer: " + r.decoderResult().cause()));
        return;
      }
      end(ctx.channel(), !HttpUtil.isKeepAlive(r));
      p.complete(r);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      fail(ctx.channel(), sent ? new IOException("closed the connection before it answered")
          : new NotSent("closed the connection before the request was sent", null));
      ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      if (!fail(ctx.channel(), cause instanceof IOException ? cause : new IOException(cause.toString(), cause))) ctx.close();
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
      if (evt instanceof IdleStateEvent && pending == null) ctx.close(); // an idle pooled connection
      else ctx.fireUserEventTriggered(evt);
    }

    /** Ends the request in progress with {@code e} and discards the connection; false when none was in progress. */
    private boolean fail(Channel ch, Throwable e) {
      CompletableFuture<FullHttpResponse> p = pending;
      if (p == null) return false;
      end(ch, true);
      p.completeExceptionally(e);
      return true;
    }

    /** Gives the connection back to its pool (closed first when it cannot carry another request). */
    private void end(Channel ch, boolean close) {
      pending = null;
      timer.cancel(false);
      if (close) ch.close();
      pool.release(ch);
    }
  }
}
