-- luacheck: the library, specs, examples and benchmarks, no globals.
std = "lua54"
max_line_length = 120
files["spec/"] = {std = "+busted"}
files["bench/"] = {std = "lua54"}
-- types/: LuaCATS definitions for lua-language-server (a ---@meta file, never
-- run): empty functions whose arguments only name the parameters, and class
-- tables that only receive methods.
files["types/"] = {std = "min", unused_args = false, ignore = {"241"}}
