# Writes the source tree's `git describe --always --dirty` into a C++ source (cmake -P, at every build).
# configure_file leaves the file untouched when the commit is unchanged, so nothing recompiles then.
# Inputs: -DSOURCE_DIR=... -DTEMPLATE=... -DOUTPUT=...
set(AUTOGUIDE_GIT_COMMIT unknown)
find_program(GIT_EXECUTABLE git)
if(GIT_EXECUTABLE)
  # --no-optional-locks: no index refresh that could collide with a commit running beside the build.
  execute_process(COMMAND ${GIT_EXECUTABLE} --no-optional-locks -C ${SOURCE_DIR} describe --always --dirty --abbrev=12
                  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE failed)
  if(NOT failed AND commit MATCHES "^[0-9A-Za-z._+-]+$")
    set(AUTOGUIDE_GIT_COMMIT ${commit})
  endif()
endif()
configure_file(${TEMPLATE} ${OUTPUT} @ONLY)
