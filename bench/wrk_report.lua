-- wrk_report.lua: makes wrk print its summary as one JSON line, with the latency percentiles
-- wrk's own --latency table lacks (p99.9), so bench/suite.py reads numbers, not a text table.
-- Latencies are in microseconds, as wrk keeps them.
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
        '"errors_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,' ..
        '"max_us":%d,"mean_us":%.1f}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency:percentile(99.9), latency.max, latency.mean))
end
