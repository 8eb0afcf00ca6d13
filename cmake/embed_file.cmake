# Writes a file's bytes into a C++ source as `extern const unsigned char NAME[]` and `NAME##Size` (cmake -P, at
# build time, whenever the file changes), so that the binary carries it and never looks it up at run time.
# Inputs: -DINPUT=... -DOUTPUT=... -DNAME=...
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# 24 bytes a line keeps the generated file readable in a diff tool.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){24})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUTPUT}.tmp "// Generated from ${INPUT} by cmake/embed_file.cmake; do not edit.\n"
     "extern const unsigned char ${NAME}[];\nextern const unsigned long ${NAME}Size;\n"
     "const unsigned char ${NAME}[] = {\n${bytes}0x00};\nconst unsigned long ${NAME}Size = ${size};\n")
configure_file(${OUTPUT}.tmp ${OUTPUT} COPYONLY)  # rewritten only when it changed
file(REMOVE ${OUTPUT}.tmp)
