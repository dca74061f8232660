package io.kiln.deploy.server;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/** One HTTP/1.1 connection over a plain socket, to test what a client library hides: keep-alive, pipelining, bad requests. */
final class RawHttp implements AutoCloseable {
  record Response(int status, Map<String, String> headers, String body) {
    String header(String name) {
      return headers.get(name.toLowerCase(Locale.ROOT));
    }
  }

  private final Socket socket;
  private final InputStream in;
  private final OutputStream out;

  RawHttp(int port) throws IOException {
    socket = new Socket("127.0.0.1", port);
    socket.setSoTimeout(30_000);
    socket.setTcpNoDelay(true);
    in = new java.io.BufferedInputStream(socket.getInputStream());
    out = socket.getOutputStream();
  }

  /** A POST with the test token, as bytes (to pipeline several in one write). */
  static byte[] post(String path, String contentType, String body, String... headers) {
    StringBuilder sb = new StringBuilder("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + Http.TOKEN + "\r\nContent-Type: " + contentType + "\r\n");
    for (int i = 0; i + 1 < headers.length; i += 2) sb.append(headers[i]).append(": ").append(headers[i + 1]).append("\r\n");
    byte[] b = body.getBytes(StandardCharsets.UTF_8);
    sb.append("Content-Length: ").append(b.length).append("\r\n\r\n").append(body);
    return sb.toString().getBytes(StandardCharsets.UTF_8);
  }

  static byte[] get(String path) {
    return ("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + Http.TOKEN + "\r\n\r\n")
        .getBytes(StandardCharsets.UTF_8);
  }

  void send(byte[]... requests) throws IOException {
    for (byte[] r : requests) out.write(r);
    out.flush();
  }

  /** Reads one response (Content-Length bodies only, as the server writes them). */
  Response read() throws IOException {
    String status = line();
    Map<String, String> headers = new TreeMap<>();
    for (String l = line(); !l.isEmpty(); l = line()) {
      int c = l.indexOf(':');
      headers.put(l.substring(0, c).trim().toLowerCase(Locale.ROOT), l.substring(c + 1).trim());
    }
    int n = Integer.parseInt(headers.getOrDefault("content-length", "0"));
    byte[] body = in.readNBytes(n);
    if (body.length < n) throw new EOFException("body cut at " + body.length + " of " + n + " bytes");
    return new Response(Integer.parseInt(status.split(" ")[1]), headers, new String(body, StandardCharsets.UTF_8));
  }

  /** True when the server closed the connection (end of stream within the socket timeout). */
  boolean closedByServer() throws IOException {
    try {
      return in.read() == -1;
    } catch (java.net.SocketException e) {
      return true; // reset
    }
  }

  private String line() throws IOException {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    int c;
    while ((c = in.read()) != '\n') {
      if (c == -1) throw new EOFException("connection closed by the server");
      if (c != '\r') b.write(c);
    }
    return b.toString(StandardCharsets.UTF_8);
  }

  @Override
  public void close() throws IOException {
    socket.close();
  }
}
