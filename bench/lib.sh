# Shared by bench/run.sh and bench/batch.sh.

wait_for() { # url: waits up to 30 s for it to answer
  for _ in $(seq 1 150); do curl -fs -o /dev/null "$1" && return 0; sleep 0.2; done
  echo "bench: $1 did not answer" >&2
  return 1
}

write_doc_section() { # name report: replaces the lines between <!-- NAME:begin --> and <!-- NAME:end --> in docs/benchmarks.md
  local doc="$root/docs/benchmarks.md" begin="<!-- $1:begin -->" end="<!-- $1:end -->"
  if grep -qF "$begin" "$doc"; then
    awk -v begin="$begin" -v end="$end" -v report="$2" '
      $0 == begin { print; while ((getline line < report) > 0) print line; skipping = 1; next }
      $0 == end { skipping = 0 }
      !skipping { print }' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
    echo "bench: docs/benchmarks.md updated" >&2
  fi
}
