package com.sentinelixl.diag;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Maintenance-terminal client for the Sentinel IXL diagnostics bus.
 *
 * <p>Reassembles log lines that nodes send as sequences of 8-byte CAN
 * payloads (record types LOG_LINE_START / LOG_LINE_CONT / LOG_LINE_END, see
 * docs/diagnostics-bus.rst), parses them according to docs/log-format.md and
 * hands {@link LogRecord}s to a listener.
 *
 * <p>The client only reads the bus. Commands that change state
 * ({@code pmc restore}, {@code ace reset}, {@code tcm ack}) are sent by the
 * terminal's command module, which is not part of this class.
 */
public final class DiagBusClient {

    /** CAN record types carried in identifier bits 19..16. */
    static final int LOG_LINE_START = 0;
    static final int LOG_LINE_CONT = 1;
    static final int LOG_LINE_END = 2;
    static final int TIME_SYNC = 6;

    /** Same layout as LINE_RE in src/tools/log_analyzer.py. */
    static final Pattern LINE = Pattern.compile(
        "^(\\S+) ([AB-]) (\\S+)\\s+(ERROR|WARN|INFO|DEBUG)\\s+(\\S+)\\s+(\\S+) (\\w+): ([^(]*?)(?: \\((.*)\\))?$");

    /** Short descriptions shown next to a code in the terminal's event list. */
    static final Map<String, String> CODE_TEXT = new HashMap<>();
    static {
        CODE_TEXT.put("E73-B", "point fails to lock within pm_lock_timeout_ms after throw");
        CODE_TEXT.put("E73-A", "point motor over-current");
        CODE_TEXT.put("E74-A", "point throw timeout");
        CODE_TEXT.put("E71-A", "point detection lost without command");
        CODE_TEXT.put("E75-D", "point trailed");
        CODE_TEXT.put("E12-A", "unexpected track occupancy");
        CODE_TEXT.put("E14-B", "loss of shunt");
        CODE_TEXT.put("E31-A", "axle counter section disturbed");
        CODE_TEXT.put("E31-B", "sweep run not accepted");
        CODE_TEXT.put("E44-A", "balise telegram CRC mismatch");
        CODE_TEXT.put("E44-D", "Packet 44 application identifier not allowed");
        CODE_TEXT.put("E52-B", "emergency brake applied at standstill");
        CODE_TEXT.put("E61-A", "route not locked within setting timeout");
        CODE_TEXT.put("E81-A", "object controller heartbeat lost");
        CODE_TEXT.put("E82-A", "diagnostics bus off");
        CODE_TEXT.put("W05-D", "configuration value clamped");
    }

    /** One parsed log line. */
    public record LogRecord(String timestamp, char channel, String subsystem, String level,
                            String code, String object, String function, String message,
                            Map<String, String> details) {

        /** True for E-codes and W-codes, false for "-". */
        public boolean hasCode() {
            return !"-".equals(code);
        }

        public String describe() {
            return CODE_TEXT.getOrDefault(code, message);
        }
    }

    private final Map<Integer, StringBuilder> partial = new HashMap<>();
    private final Consumer<LogRecord> listener;
    private final List<String> unparsed = new ArrayList<>();

    public DiagBusClient(Consumer<LogRecord> listener) {
        this.listener = listener;
    }

    /**
     * Feed one received CAN frame.
     *
     * @param canId   29-bit extended identifier
     * @param payload up to 8 data bytes
     */
    public void onFrame(int canId, byte[] payload) {
        int source = (canId >>> 20) & 0x3F;
        int type = (canId >>> 16) & 0x0F;
        switch (type) {
            case LOG_LINE_START -> {
                StringBuilder sb = new StringBuilder(256);
                sb.append(new String(payload, StandardCharsets.US_ASCII));
                partial.put(source, sb);
            }
            case LOG_LINE_CONT -> {
                StringBuilder sb = partial.get(source);
                if (sb != null) {
                    sb.append(new String(payload, StandardCharsets.US_ASCII));
                }
            }
            case LOG_LINE_END -> {
                StringBuilder sb = partial.remove(source);
                if (sb == null) {
                    return;   // start frame lost, e.g. after E82-A bus-off recovery
                }
                int len = payload.length > 0 ? payload[0] & 0xFF : 0;
                sb.append(new String(payload, 1, Math.min(len, payload.length - 1),
                                     StandardCharsets.US_ASCII));
                emit(sb.toString().stripTrailing());
            }
            default -> { /* TIME_SYNC, traces and command traffic handled elsewhere */ }
        }
    }

    /** Parse one complete line and notify the listener. */
    void emit(String line) {
        Matcher m = LINE.matcher(line);
        if (!m.matches()) {
            unparsed.add(line);
            return;
        }
        listener.accept(new LogRecord(m.group(1), m.group(2).charAt(0), m.group(3), m.group(4),
                                      m.group(5), m.group(6), m.group(7), m.group(8).trim(),
                                      parseDetails(m.group(9))));
    }

    /** Split "key=value key=value" into a map; values contain no spaces. */
    static Map<String, String> parseDetails(String details) {
        Map<String, String> out = new HashMap<>();
        if (details == null) {
            return out;
        }
        for (String token : details.trim().split("\\s+")) {
            int eq = token.indexOf('=');
            if (eq > 0) {
                out.put(token.substring(0, eq), token.substring(eq + 1));
            }
        }
        return out;
    }

    public List<String> unparsedLines() {
        return List.copyOf(unparsed);
    }
}
