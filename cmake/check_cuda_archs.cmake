# Fails unless BINARY holds an ELF cubin for every architecture in ARCHS (a ;-list such as
# "90a;100a;120a;121a"), as `cuobjdump --list-elf` lists them ("... .sm_90a.cubin").
if(NOT CUOBJDUMP)
  message(FATAL_ERROR "cuobjdump not found: scripts/install-deps.sh installs it (PyPI "
                      "nvidia-cuda-cuobjdump into .venv-test)")
endif()
execute_process(COMMAND ${CUOBJDUMP} --list-elf ${BINARY} RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cuobjdump --list-elf ${BINARY} failed (${rc}): ${err}")
endif()
set(missing "")
foreach(arch ${ARCHS})
  string(REGEX REPLACE "-(real|virtual)$" "" a "${arch}")
  if(NOT out MATCHES "\\.sm_${a}\\.cubin")
    list(APPEND missing "sm_${a}")
  endif()
endforeach()
if(missing)
  message(FATAL_ERROR "${BINARY} has no cubin for: ${missing}\ncuobjdump --list-elf:\n${out}")
endif()
message(STATUS "cubins for ${ARCHS} present in ${BINARY}")
