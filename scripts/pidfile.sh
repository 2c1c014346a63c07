# shellcheck shell=bash
# Sourced by kube-down and cluster-down (not run): stops processes by the PID files that kube-up and
# cluster-up write, never by name.
#
# stop_pidfile FILE: FILE holds "PID START", START being the process's start time (field 22 of
# /proc/PID/stat), so that a PID the kernel has since reused is never signalled. SIGTERM to its
# process group (or to it, when it leads none), SIGKILL after 10 s, then FILE is removed. Returns 1,
# and keeps FILE, when the process still runs after that.
stop_pidfile() {
  local f=$1 pid started
  [ -s "$f" ] || return 0
  read -r pid started <"$f" || true
  # Alive: that PID with that start time, and not a zombie waiting for its parent to reap it.
  _pidfile_alive() {
    local stat
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$(echo "$stat" | cut -d' ' -f22)" = "$started" ] && [ "$(echo "$stat" | cut -d' ' -f3)" != Z ]
  }
  if _pidfile_alive; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do _pidfile_alive || break; sleep 0.1; done
    if _pidfile_alive; then
      echo "${0##*/}: pid $pid ($f) ignored SIGTERM for 10 s; killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do _pidfile_alive || break; sleep 0.1; done
    fi
    if _pidfile_alive; then
      echo "${0##*/}: pid $pid ($f) is still running" >&2
      return 1
    fi
  fi
  rm -f "$f"
}
