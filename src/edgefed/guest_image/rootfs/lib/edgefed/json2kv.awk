# Flatten a JSON document into path=value lines (arrays: path.N, with path.#=count).
function skip() { while (i <= n && index(" \t\r\n", substr(s, i, 1))) i++ }
function str(   c, out) {
  i++; out = ""
  while (i <= n) {
    c = substr(s, i, 1)
    if (c == "\\") {
      c = substr(s, i + 1, 1)
      if (c == "n" || c == "r" || c == "t") out = out " "
      else if (c == "u") { out = out "?"; i += 4 }
      else out = out c
      i += 2; continue
    }
    if (c == "\"") { i++; return out }
    out = out c; i++
  }
  return out
}
function val(path,   c, k, idx) {
  skip(); c = substr(s, i, 1)
  if (c == "{") {
    i++; skip()
    if (substr(s, i, 1) == "}") { i++; return }
    while (i <= n) {
      skip(); k = str(); skip(); i++
      val(path == "" ? k : path "." k)
      skip(); c = substr(s, i, 1); i++
      if (c == "}") return
    }
    return
  }
  if (c == "[") {
    i++; skip(); idx = 0
    if (substr(s, i, 1) == "]") { i++; print path ".#=0"; return }
    while (i <= n) {
      val(path "." idx); idx++
      skip(); c = substr(s, i, 1); i++
      if (c == "]") { print path ".#=" idx; return }
    }
    return
  }
  if (c == "\"") { k = str(); sub(/ +$/, "", k); print path "=" k; return }
  k = ""
  while (i <= n && index(",}] \t\r\n", substr(s, i, 1)) == 0) { k = k substr(s, i, 1); i++ }
  print path "=" k
}
{ s = s $0 "\n" }
END { n = length(s); i = 1; val("") }
