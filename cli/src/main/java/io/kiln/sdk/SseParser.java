package io.kiln.sdk;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.util.function.Consumer;

/**
 * A {@code text/event-stream} parser (the subset of the WHATWG rules Kiln needs): {@code event:},
 * {@code data:} (several are joined with a newline), {@code id:}, comments ({@code :...}) ignored,
 * a blank line dispatches the event. An event still open when the stream ends is dispatched too
 * (lenient towards a server that omits the last blank line). CR, LF and CRLF all end a line.
 */
public final class SseParser {
    private SseParser() {
    }

    /** Reads events until the stream ends; each is handed to {@code consumer} in order. */
    public static void parse(InputStream in, Consumer<SseEvent> consumer) throws IOException {
        parse(new InputStreamReader(in, StandardCharsets.UTF_8), consumer);
    }

    /** Reads events until the reader ends; each is handed to {@code consumer} in order. */
    public static void parse(Reader reader, Consumer<SseEvent> consumer) throws IOException {
        BufferedReader in = reader instanceof BufferedReader ? (BufferedReader) reader : new BufferedReader(reader);
        String event = null;
        StringBuilder data = null;
        String id = null;
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) {
                if (data != null) {
                    consumer.accept(new SseEvent(event == null ? "message" : event, data.toString(), id));
                }
                event = null;
                data = null;
                id = null;
                continue;
            }
            if (line.startsWith(":")) {
                continue; // comment / keep-alive
            }
            int colon = line.indexOf(':');
            String field = colon < 0 ? line : line.substring(0, colon);
            String value = colon < 0 ? "" : line.substring(colon + 1);
            if (value.startsWith(" ")) {
                value = value.substring(1);
            }
            switch (field) {
                case "event":
                    event = value;
                    break;
                case "data":
                    if (data == null) {
                        data = new StringBuilder(value);
                    } else {
                        data.append('\n').append(value);
                    }
                    break;
                case "id":
                    id = value;
                    break;
                default:
                    break; // "retry" and unknown fields are ignored
            }
        }
        if (data != null) {
            consumer.accept(new SseEvent(event == null ? "message" : event, data.toString(), id));
        }
    }
}
