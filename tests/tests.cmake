# Every test file is registered by a glob, so none can fall out of the build;
# tests/lua/registry_spec.lua also checks that each file matches a pattern here.

# C unit tests: tests/c/test_*.c and kernels/<op>/test_<op>.c (CPU) ------------------------
file(GLOB TMRUN_C_TESTS CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/tests/c/test_*.c
  ${PROJECT_SOURCE_DIR}/kernels/*/test_*.c)
foreach(src ${TMRUN_C_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src} ${PROJECT_SOURCE_DIR}/tests/c/harness.c)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/c)
  target_compile_options(${name} PRIVATE ${TMRUN_ARCH_FLAGS})
  target_link_libraries(${name} PRIVATE tmrun_static)
  if(TMRUN_HAVE_CUDA)
    set_target_properties(${name} PROPERTIES LINKER_LANGUAGE CUDA)
  endif()
  add_test(NAME c.${name} COMMAND ${name} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(c.${name} PROPERTIES ENVIRONMENT "TMRUN_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp")
endforeach()

# CUDA twin tests (run on a GPU machine; skip with code 77 where there is none) ---------
if(TMRUN_HAVE_CUDA)
  file(GLOB TMRUN_CUDA_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/*/cutest_*.c)
  foreach(src ${TMRUN_CUDA_TESTS})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src} ${PROJECT_SOURCE_DIR}/tests/c/harness.c)
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/c)
    target_link_libraries(${name} PRIVATE tmrun_static)
    set_target_properties(${name} PROPERTIES LINKER_LANGUAGE CUDA)
    add_test(NAME cuda.${name} COMMAND ${name})
    set_tests_properties(cuda.${name} PROPERTIES SKIP_RETURN_CODE 77)
  endforeach()
endif()

# Lua specs: tests/lua/*_spec.lua, each run by busted inside the tmrun host ------------
file(GLOB TMRUN_LUA_SPECS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/lua/*_spec.lua)
foreach(spec ${TMRUN_LUA_SPECS})
  get_filename_component(name ${spec} NAME_WE)
  add_test(NAME lua.${name}
    COMMAND $<TARGET_FILE:tmrun_host> ${PROJECT_SOURCE_DIR}/tests/lua/run_busted.lua ${spec}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(lua.${name} PROPERTIES
    SKIP_RETURN_CODE 77
    ENVIRONMENT "TMRUN_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp;TMRUN_BUILD_DIR=${CMAKE_BINARY_DIR}")
endforeach()

# End-to-end specs with real timing (a browser, a terminal, streams being cancelled)
# run alone, so a loaded 2-core CI machine does not starve them.
foreach(t lua.webchat_spec lua.serve_spec lua.chat_spec lua.http_spec)
  if(TEST ${t})
    set_tests_properties(${t} PROPERTIES RUN_SERIAL TRUE)
  endif()
endforeach()

# The engine's C test under valgrind too (a short case: threads, cancel, shutdown).
find_program(VALGRIND valgrind)
if(VALGRIND AND NOT TMRUN_SANITIZE)
  add_test(NAME valgrind.test_engine
    COMMAND ${VALGRIND} --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite -q
      --suppressions=${PROJECT_SOURCE_DIR}/tests/valgrind.supp $<TARGET_FILE:test_engine>)
endif()
