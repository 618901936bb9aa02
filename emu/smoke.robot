*** Comments ***
Umbra smoke test on an emulated STM32F4 Discovery (Renode).

Run from the repository root, with Renode's test runner:
    renode-test emu/smoke.robot --variable FIRMWARE:/abs/path/firmware.elf
(`make emu FIRMWARE=… EMULATOR=renode` does the same through tools/emu.py,
without Robot Framework.)

The suite boots the stock MicroPython image, waits for its REPL banner on
USART2, then hands the UART pty to `python -m tools.emu --attach`, which
deploys Umbra with stock mpremote and runs emu/smoke.py on the board.


*** Settings ***
Library           Process
Suite Setup       Setup
Suite Teardown    Teardown
Test Teardown     Test Teardown
Resource          ${RENODEKEYWORDS}


*** Variables ***
${FIRMWARE}       ${CURDIR}/../build-STM32F4DISC/firmware.elf
${UART_PTY}       /tmp/umbra-renode-uart-robot
${PYTHON}         ${CURDIR}/../.venv/bin/python
${REPO}           ${CURDIR}/..


*** Keywords ***
Boot MicroPython
    Execute Command           $elf=@${FIRMWARE}
    Execute Command           $uart_pty="${UART_PTY}"
    Execute Script            ${CURDIR}/stm32f4.resc
    Create Terminal Tester    sysbus.usart2    timeout=30
    Wait For Line On Uart     MicroPython


*** Test Cases ***
MicroPython Boots To Its REPL
    Boot MicroPython
    Write Line To Uart        print(6 * 7)
    Wait For Line On Uart     42

Umbra Deploys And Its Smoke Scenario Passes
    Boot MicroPython
    ${result}=    Run Process    ${PYTHON}    -m    tools.emu    --attach    ${UART_PTY}
    ...           cwd=${REPO}    timeout=300s    stderr=STDOUT
    Log           ${result.stdout}
    Should Be Equal As Integers    ${result.rc}    0
    Should Contain    ${result.stdout}    "smoke": "pass"
