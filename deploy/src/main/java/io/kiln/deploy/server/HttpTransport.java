package io.kiln.deploy.server;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.DateFormatter;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpMessage;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.TooLongHttpHeaderException;
import io.netty.handler.codec.http.TooLongHttpLineException;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.net.InetSocketAddress;
import java.net.URI;
import java.util.ArrayDeque;
import java.util.Date;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The model server's HTTP/1.1 transport on Netty: epoll when available (NIO otherwise), one event
 * loop per core, {@link HttpServerCodec} + an {@link HttpObjectAggregator} (bodies up to {@code
 * maxBody}; larger: 413 with a JSON message), keep-alive, pipelining (answers leave in request order).
 * It turns requests into {@link ServeRequest}s and {@link ServeResponse}s back into HTTP; what to
 * answer, and on which thread, is the {@link Handler}'s business.
 */
final class HttpTransport implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(HttpTransport.class);
  /** Connections with no traffic this long (and no request in progress) are closed. */
  private static final long IDLE_SECONDS = 120;

  /** What the transport calls, on its I/O thread. */
  interface Handler {
    /** The answer to {@code req}: already complete when it was computed on this thread. */
    CompletableFuture<ServeResponse> handle(ServeRequest req);

    /** A request the transport answered itself ({@code status} 400, 413, 414, 431: malformed or too large). */
    void rejected(int status);
  }

  private final Handler handler;
  private final int maxBody;
  private final EventLoopGroup loops;
  private final Channel server;
  private final boolean epoll;

  HttpTransport(String host, int port, int maxBody, Handler handler) throws InterruptedException {
    this.handler = handler;
    this.maxBody = maxBody;
    this.epoll = Epoll.isAvailable();
    IoHandlerFactory io = epoll ? EpollIoHandler.newFactory() : NioIoHandler.newFactory();
    // one loop per core: requests are short, and most are answered on the loop that read them
    this.loops = new MultiThreadIoEventLoopGroup(Runtime.getRuntime().availableProcessors(),
        new DefaultThreadFactory("kiln-serve-io", true), io);
    Class<? extends ServerChannel> type = epoll ? EpollServerSocketChannel.class : NioServerSocketChannel.class;
    try {
      this.server = new ServerBootstrap().group(loops).channel(type)
          .option(ChannelOption.SO_BACKLOG, 1024)
          .option(ChannelOption.SO_REUSEADDR, true)
          .childOption(ChannelOption.TCP_NODELAY, true)
          .childHandler(new ChannelInitializer<SocketChannel>() {
            @Override
            protected void initChannel(SocketChannel ch) {
              ch.pipeline().addLast(new IdleStateHandler(0, 0, IDLE_SECONDS, TimeUnit.SECONDS),
                  new HttpServerCodec(), new Aggregator(maxBody), new Connection());
            }
          })
          .bind(host, port).sync().channel();
    } catch (InterruptedException | RuntimeException e) {
      loops.shutdownGracefully(0, 1, TimeUnit.SECONDS);
      throw e;
    }
  }

  int port() {
    return ((InetSocketAddress) server.localAddress()).getPort();
  }

  String kind() {
    return epoll ? "epoll" : "nio";
  }

  /** Stops accepting connections; open connections keep being served. */
  void stopAccepting() {
    server.close().syncUninterruptibly();
  }

  /** Closes every connection, after what is queued to be written. */
  @Override
  public void close() {
    stopAccepting();
    loops.shutdownGracefully(0, 5, TimeUnit.SECONDS).syncUninterruptibly();
  }

  /** One connection: answers its requests in order; at most one is being answered at a time. */
  private final class Connection extends ChannelInboundHandlerAdapter {
    /** Pipelined requests read while one is answered off the loop (the channel stops reading meanwhile). */
    private final ArrayDeque<FullHttpRequest> waiting = new ArrayDeque<>(2);
    private boolean busy;
    private boolean unflushed;
    /** An answer said Connection: close: later requests on this connection are dropped. */
    private boolean closing;

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      if (!(msg instanceof FullHttpRequest req)) { // the aggregator passes only whole requests
        ReferenceCountUtil.release(msg);
        return;
      }
      if (closing) req.release();
      else if (busy) waiting.add(req);
      else serve(ctx, req);
    }

    private void serve(ChannelHandlerContext ctx, FullHttpRequest req) {
      HttpVersion version = req.protocolVersion();
      boolean keepAlive;
      ServeRequest r;
      try {
        if (req.decoderResult().isFailure()) {
          malformed(ctx, req.decoderResult().cause());
          return;
        }
        keepAlive = HttpUtil.isKeepAlive(req);
        closing = !keepAlive;
        HttpHeaders h = req.headers();
        r = new ServeRequest(req.method().name(), path(req.uri()), h::get, ByteBufUtil.getBytes(req.content()));
      } finally {
        req.release();
      }
      CompletableFuture<ServeResponse> f;
      try {
        f = handler.handle(r);
      } catch (RuntimeException e) { // the handler answers its own failures; this is a bug
        LOG.warn("{} {} failed", r.method(), r.path(), e);
        f = CompletableFuture.completedFuture(ServeResponse.error(500, e.toString()));
      }
      if (f.isDone()) {
        write(ctx, f.join(), version, keepAlive);
        unflushed = true; // flushed once per read batch (channelReadComplete)
        return;
      }
      busy = true;
      ctx.channel().config().setAutoRead(false);
      f.whenComplete((res, t) -> ctx.executor().execute(() -> {
        write(ctx, t == null ? res : ServeResponse.error(500, t.toString()), version, keepAlive);
        ctx.flush();
        busy = false;
        FullHttpRequest next;
        while (!busy && !closing && (next = waiting.poll()) != null) serve(ctx, next);
        if (unflushed) channelReadComplete(ctx);
        if (!busy) ctx.channel().config().setAutoRead(true);
      }));
    }

    private void malformed(ChannelHandlerContext ctx, Throwable cause) {
      int status = cause instanceof TooLongHttpLineException ? 414
          : cause instanceof TooLongHttpHeaderException ? 431 : 400;
      handler.rejected(status);
      closing = true;
      String what = status == 414 ? "request line too long" : status == 431 ? "request headers too large"
          : "malformed HTTP request";
      ServeResponse res = ServeResponse.error(status, what + ": " + cause.getMessage());
      write(ctx, res, HttpVersion.HTTP_1_1, false); // the stream cannot be trusted after this: close
      ctx.flush();
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
      if (unflushed) {
        unflushed = false;
        ctx.flush();
      }
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
      if (evt instanceof IdleStateEvent && !busy) ctx.close();
      else ctx.fireUserEventTriggered(evt);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      closing = true;
      waiting.forEach(ReferenceCountUtil::release);
      waiting.clear();
      ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      LOG.debug("connection {}: {}", ctx.channel().remoteAddress(), cause.toString());
      ctx.close();
    }
  }

  /** Writes {@code res} (not flushed); closes the connection after it unless kept alive. */
  private static void write(ChannelHandlerContext ctx, ServeResponse res, HttpVersion version, boolean keepAlive) {
    FullHttpResponse out = response(res, version);
    if (keepAlive) {
      if (version.equals(HttpVersion.HTTP_1_0)) out.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
      ctx.write(out, ctx.voidPromise());
    } else {
      out.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
      ctx.write(out).addListener(ChannelFutureListener.CLOSE);
    }
  }

  private static FullHttpResponse response(ServeResponse res, HttpVersion version) {
    FullHttpResponse out = new DefaultFullHttpResponse(version, HttpResponseStatus.valueOf(res.status()),
        Unpooled.wrappedBuffer(res.body()));
    HttpHeaders h = out.headers();
    h.set(HttpHeaderNames.CONTENT_TYPE, res.contentType());
    h.setInt(HttpHeaderNames.CONTENT_LENGTH, res.body().length);
    h.set(HttpHeaderNames.DATE, Clock.now());
    for (Map.Entry<String, String> e : res.headers().entrySet()) h.set(e.getKey(), e.getValue());
    return out;
  }

  /** The request target's path, still percent-encoded, without query or fragment (also for absolute-form targets). */
  static String path(String target) {
    if (!target.startsWith("/")) {
      try {
        String p = URI.create(target).getRawPath();
        return p == null || p.isEmpty() ? "/" : p;
      } catch (IllegalArgumentException e) {
        return target;
      }
    }
    int end = target.length();
    for (int i = 0; i < end; i++) {
      char c = target.charAt(i);
      if (c == '?' || c == '#') end = i;
    }
    return target.substring(0, end);
  }

  /** The aggregator, answering bodies over the limit with 413 and a message that says the limit. */
  private final class Aggregator extends HttpObjectAggregator {
    Aggregator(int maxBody) {
      super(maxBody);
    }

    @Override
    protected void handleOversizedMessage(ChannelHandlerContext ctx, HttpMessage oversized) {
      handler.rejected(413);
      ServeResponse res = ServeResponse.error(413, "request body larger than this server's limit of " + maxBody
          + " bytes (" + (maxBody >> 20) + " MiB); send fewer rows per request");
      // as HttpObjectAggregator does: when the body is already under way, or the client neither waits for
      // 100-continue nor keeps the connection, close after the answer; else skip the body and keep it
      boolean close = !(oversized instanceof HttpRequest)
          || oversized instanceof FullHttpMessage
          || !HttpUtil.is100ContinueExpected(oversized) && !HttpUtil.isKeepAlive(oversized);
      FullHttpResponse out = response(res, HttpVersion.HTTP_1_1);
      if (close) {
        out.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        ctx.writeAndFlush(out).addListener(ChannelFutureListener.CLOSE);
      } else {
        ctx.writeAndFlush(out).addListener(ChannelFutureListener.CLOSE_ON_FAILURE);
      }
    }
  }

  /** The Date header's value, formatted once a second. */
  private static final class Clock {
    private record Stamp(long second, String value) {}

    private static volatile Stamp stamp = new Stamp(-1, "");

    static String now() {
      long ms = System.currentTimeMillis();
      Stamp s = stamp;
      if (s.second() == ms / 1000) return s.value();
      s = new Stamp(ms / 1000, DateFormatter.format(new Date(ms)));
      stamp = s;
      return s.value();
    }
  }
}
