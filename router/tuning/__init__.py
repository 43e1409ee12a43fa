"""The tuning loop: decision records, shadow policy, and the offline side (eval, tune, replay) over DuckDB."""
