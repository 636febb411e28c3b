//! Building the engine's `device-fault` alerts.

use super::*;

impl Engine {
    /// A `device-fault` alert; `message` overrides the generic one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fault_alert(
        &self,
        device: DeviceRef,
        state: AlertState,
        severity: Severity,
        at: Timestamp,
        fault: &str,
        reason: String,
        message: Option<Msg<'_>>,
    ) -> Alert {
        Self::make_fault_alert(&self.branch, self.lang, device, state, severity, at, fault, reason, message)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn make_fault_alert(
        branch: &BranchId,
        lang: Lang,
        device: DeviceRef,
        state: AlertState,
        severity: Severity,
        at: Timestamp,
        fault: &str,
        reason: String,
        message: Option<Msg<'_>>,
    ) -> Alert {
        let message = match (message, state) {
            (Some(m), _) => m.render(lang),
            (None, AlertState::Raised) => Msg::Fault { device: &device.name, fault, detail: &reason }.render(lang),
            (None, AlertState::Cleared) => Msg::FaultCleared { device: &device.name, fault }.render(lang),
        };
        Alert::new(
            branch.clone(),
            device,
            state,
            severity,
            at,
            message,
            AlertBody::DeviceFault(DeviceFaultDetails {
                fault: fault.to_string(),
                reason,
                dropped_events: None,
                outage_ms: None,
                waiting_events: None,
            }),
        )
    }
}
